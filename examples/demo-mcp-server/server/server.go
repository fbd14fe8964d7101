// Package server is the demo MCP server that sits behind Envoy and mcp-authz
// in the examples and the end-to-end tests. It trusts the x-mcp-* identity
// headers that the proxy sets after mcp-authz allowed the request, and
// refuses requests that arrive without them.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Identity headers set by the proxy on allowed requests.
const (
	headerClientID = "X-Mcp-Client-Id"
	headerSubject  = "X-Mcp-Subject"
	headerScope    = "X-Mcp-Scope"
)

type echoArgs struct {
	Text string `json:"text" jsonschema:"the text to send back"`
}

type addArgs struct {
	A int `json:"a" jsonschema:"the first addend"`
	B int `json:"b" jsonschema:"the second addend"`
}

// Handler returns the demo server's Streamable HTTP handler. Requests that
// lack the x-mcp-subject header (the proxy did not authorize them) get 401,
// so a misconfigured proxy fails closed.
func Handler(logger *slog.Logger) http.Handler {
	srv := mcp.NewServer(&mcp.Implementation{Name: "mcp-authz-demo", Version: "1.0.0"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Echo the given text."}, echo)
	mcp.AddTool(srv, &mcp.Tool{Name: "add", Description: "Add two integers."}, add)
	mcp.AddTool(srv, &mcp.Tool{
		Name:        "whoami",
		Description: "Tell who the gateway says is calling.",
	}, whoami)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Logger: logger})
	return requireIdentity(h)
}

func requireIdentity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(headerSubject) == "" || r.Header.Get("Authorization") != "" {
			// Either the proxy did not ask mcp-authz, or it forwarded the
			// bearer token it should have removed.
			http.Error(w, "request did not pass through the authorizing proxy",
				http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

func echo(_ context.Context, _ *mcp.CallToolRequest, a echoArgs) (*mcp.CallToolResult, any, error) {
	return text(a.Text), nil, nil
}

func add(_ context.Context, _ *mcp.CallToolRequest, a addArgs) (*mcp.CallToolResult, any, error) {
	return text(fmt.Sprint(a.A + a.B)), nil, nil
}

func whoami(_ context.Context, req *mcp.CallToolRequest,
	_ struct{}) (*mcp.CallToolResult, any, error) {
	var h http.Header
	if req.Extra != nil {
		h = req.Extra.Header
	}
	return text(fmt.Sprintf("subject=%s client=%s scope=%s",
		h.Get(headerSubject), h.Get(headerClientID), h.Get(headerScope))), nil, nil
}
