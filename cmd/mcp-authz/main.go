// Command mcp-authz is the OAuth 2.1 authorization server and Envoy
// ext_authz service for MCP gateways. Run `mcp-authz help` for its
// subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcp-authz:", err)
		os.Exit(1)
	}
}
