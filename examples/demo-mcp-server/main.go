// Command demo-mcp-server runs the demo MCP server used by the examples: a
// Streamable HTTP endpoint at /mcp with the tools echo, add and whoami.
package main

import (
	"flag"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/mcp-authz/mcp-authz/examples/demo-mcp-server/server"
)

func main() {
	addr := flag.String("addr", ":8000", "listen address")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	mux := http.NewServeMux()
	mux.Handle("/mcp", server.Handler(logger))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})

	logger.Info("demo mcp server listening", "addr", *addr)
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		logger.Error("serving", "err", err)
		os.Exit(1)
	}
}
