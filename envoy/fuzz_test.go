package envoy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/mcp-authz/mcp-authz/authz"
)

// FuzzGRPCCheck feeds arbitrary header values, paths and identities through
// the gRPC translation: it must never panic, never return an RPC error, and
// always answer a response that passes Envoy's proto validation with a set
// status (even when the Decision's identity or challenge holds bytes that
// cannot go into a header).
func FuzzGRPCCheck(f *testing.F) {
	f.Add("localhost:8080", "/mcp", "Bearer a,Bearer b", "x-custom", "v", "client", "chal",
		true, true)
	f.Add("", "", "", ":authority", "h", "c\r\nx", "Bearer\x00", false, false)
	f.Add("h", "/mcp?x=%00", "Bearer t", "authorization", "Bearer u", "", "", true, false)
	f.Fuzz(func(t *testing.T, host, path, auth, key, value, ident, chal string, allow, raw bool) {
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Host: host, Path: path,
			}},
		}}
		h := req.Attributes.Request.Http
		if raw {
			h.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: "authorization", RawValue: []byte(auth)},
				{Key: key, RawValue: []byte(value)},
			}}
		} else {
			h.Headers = map[string]string{"authorization": auth, key: value}
		}
		d := &authz.Decision{
			Allow: allow, Reason: authz.Reason(ident), Status: len(ident) * 37 % 700,
			WWWAuthenticate: chal, ClientID: ident, Subject: value, Scope: chal,
		}
		srv := NewAuthorizationServer(staticChecker{d}, discard)
		resp, err := srv.Check(t.Context(), req)
		if err != nil {
			t.Fatalf("Check returned an RPC error: %v", err)
		}
		assertWellFormed(t, resp)
	})
}

// FuzzHTTPCheck feeds arbitrary subrequest paths and forwarding headers to
// the HTTP handler: it must never panic, and answer 200, 404 or the
// Decision's status.
func FuzzHTTPCheck(f *testing.F) {
	f.Add("/ext_authz/mcp", "", "", "Bearer t", true)
	f.Add("/ext_authz", "/mcp?x=1", "POST", "", false)
	f.Add("/ext_authz?x", "", "", "Bearer a, Bearer b", false)
	f.Fuzz(func(t *testing.T, target, origURI, origMethod, auth string, allow bool) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Skip("not a request target net/http would accept")
		}
		req := &http.Request{Method: "GET", URL: u, RequestURI: target, Host: "h",
			Header: http.Header{}, Body: http.NoBody}
		req.Header.Set("X-Original-URI", origURI)
		req.Header.Set("X-Original-Method", origMethod)
		req.Header.Set("Authorization", auth)
		d := denyNoToken
		if allow {
			d = allowDecision
		}
		w := httptest.NewRecorder()
		NewHTTPHandler(staticChecker{d}, discard, checkPrefix).ServeHTTP(w, req)
		switch {
		case allow && w.Code == http.StatusOK,
			!allow && w.Code == http.StatusUnauthorized,
			w.Code == http.StatusNotFound:
		default:
			t.Errorf("status %d for allow=%v", w.Code, allow)
		}
	})
}
