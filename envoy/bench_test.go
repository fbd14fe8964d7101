package envoy

import (
	"context"
	"net/http/httptest"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/mcp-authz/mcp-authz/authz"
)

// staticChecker answers every request with one Decision and records
// nothing, so benchmarks measure the translation alone.
type staticChecker struct{ d *authz.Decision }

func (c staticChecker) Check(context.Context, *authz.Request) *authz.Decision { return c.d }

// BenchmarkGRPCCheckTranslate measures one ext_authz Check without the
// network: CheckRequest to authz.Request, the (fake) decision, and the
// CheckResponse.
func BenchmarkGRPCCheckTranslate(b *testing.B) {
	rawReq := envoyCheck(func(_ *attrs, h *httpAttrs) {
		h.HeaderMap = rawHeaders(
			":authority", "localhost:8080", ":path", "/mcp?session=1", ":method", "POST",
			":scheme", "http", "authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig",
			"content-type", "application/json", "mcp-method", "tools/call",
			"x-request-id", requestID)
		h.Headers = nil
	})
	cases := []struct {
		name string
		req  *authv3.CheckRequest
		d    *authz.Decision
	}{
		{"allow/headers", envoyCheck(nil), allowDecision},
		{"allow/header_map", rawReq, allowDecision},
		{"deny401/headers", envoyCheck(nil), denyNoToken},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			srv := NewAuthorizationServer(staticChecker{c.d}, discard)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := srv.Check(ctx, c.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGRPCCheckLoopback measures one Check RPC through a real gRPC
// client and server on loopback (serialization, HTTP/2, translation).
func BenchmarkGRPCCheckLoopback(b *testing.B) {
	conn := startGRPC(b, staticChecker{allowDecision})
	client := authv3.NewAuthorizationClient(conn)
	req := envoyCheck(nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHTTPCheck measures one HTTP subrequest through the handler
// (Envoy http_service shape) without the network.
func BenchmarkHTTPCheck(b *testing.B) {
	h := NewHTTPHandler(staticChecker{allowDecision}, discard, checkPrefix)
	req := subrequest("POST", checkPrefix+"/mcp", "localhost:8080", "",
		"Authorization", token, "X-Request-Id", requestID)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}
