package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// oauthPaths are routed to mcp-authz unchecked, as the shipped Envoy
// configuration does; everything else is checked and goes to the MCP server.
var oauthPaths = []string{"/authorize", "/token", "/register", "/revoke", "/introspect",
	"/consents", "/consents/revoke"}

// envoyProxy is a small stand-in for Envoy's HTTP filter chain: it asks
// mcp-authz's gRPC Check for every MCP request, shaped as Envoy shapes it,
// and applies the answer the way Envoy does.
type envoyProxy struct {
	t        *testing.T
	authz    *httputil.ReverseProxy
	upstream *httputil.ReverseProxy
	check    authv3.AuthorizationClient
}

func newEnvoyProxy(t *testing.T, authzHTTP, grpcAddr, upstream string) *envoyProxy {
	t.Helper()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	au, _ := url.Parse(authzHTTP)
	uu, _ := url.Parse(upstream)
	return &envoyProxy{
		t:        t,
		authz:    httputil.NewSingleHostReverseProxy(au),
		upstream: httputil.NewSingleHostReverseProxy(uu),
		check:    authv3.NewAuthorizationClient(conn),
	}
}

func (p *envoyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/.well-known/") || slices.Contains(oauthPaths, r.URL.Path) {
		p.authz.ServeHTTP(w, r)
		return
	}

	// Envoy's default check timeout is 200 ms; a restarting mcp-authz
	// needs longer, so wait for the connection as Envoy's retry would.
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	resp, err := p.check.Check(ctx, envoyCheckRequest(r), grpc.WaitForReady(true))
	if err != nil {
		// failure_mode_allow: false, status_on_error: 503.
		http.Error(w, "ext_authz error", http.StatusServiceUnavailable)
		return
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		deny := resp.GetDeniedResponse()
		for _, h := range deny.GetHeaders() {
			w.Header().Set(h.GetHeader().GetKey(), h.GetHeader().GetValue())
		}
		status := int(deny.GetStatus().GetCode())
		if status == 0 {
			status = http.StatusForbidden
		}
		w.WriteHeader(status)
		io.WriteString(w, deny.GetBody())
		return
	}
	ok := resp.GetOkResponse()
	for _, h := range ok.GetHeaders() {
		r.Header.Set(h.GetHeader().GetKey(), h.GetHeader().GetValue())
	}
	for _, name := range ok.GetHeadersToRemove() {
		r.Header.Del(name)
	}
	p.upstream.ServeHTTP(w, r)
}

// envoyCheckRequest shapes r as Envoy's ext_authz filter does: lower-cased
// header keys, duplicates joined with commas, and pseudo-headers.
func envoyCheckRequest(r *http.Request) *authv3.CheckRequest {
	headers := map[string]string{
		":authority": r.Host,
		":method":    r.Method,
		":path":      r.URL.RequestURI(),
		":scheme":    "http",
	}
	for name, values := range r.Header {
		headers[strings.ToLower(name)] = strings.Join(values, ",")
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{
				Id:       r.Header.Get("X-Request-Id"),
				Method:   r.Method,
				Headers:  headers,
				Path:     r.URL.RequestURI(),
				Host:     r.Host,
				Scheme:   "http",
				Protocol: "HTTP/1.1",
			},
		},
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{
			Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.0.1",
			}},
		}},
	}}
}
