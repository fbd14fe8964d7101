package examples_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/envoy"
)

// The client's request in TestProxiesAskTheCheck, and the headers a client
// could send to mislead the check.
const (
	clientMethod = "POST"
	clientHost   = "mcp.example:8080"
	clientURI    = "/mcp?session=1"
	clientToken  = "Bearer token-1"
)

var spoofed = map[string]string{
	"X-Original-Method": "GET", "X-Original-Uri": "/elsewhere", "X-Original-Host": "evil.invalid",
	"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/elsewhere",
	"X-Forwarded-Host": "evil.invalid", "X-Forwarded-Proto": "https",
}

// recorder is a Checker that allows everything and keeps the request.
type recorder struct{ got *authz.Request }

func (r *recorder) Check(_ context.Context, req *authz.Request) *authz.Decision {
	r.got = req
	return &authz.Decision{Allow: true, Reason: authz.ReasonOK,
		ClientID: "client-1", Subject: "alice", Scope: "mcp:tools"}
}

// checkSeen is what the check must read from a proxy's subrequest.
type checkSeen struct {
	Method, Scheme, Host, Path string
	Authorization              []string
	// The MCP message the client names in its headers, for scope rules
	// (the proxies send the check no body).
	MCPMethod, MCPName string
}

// TestProxiesAskTheCheck builds the subrequest each proxy sends, from its
// example configuration and the proxy's documented behaviour, sends it to
// the real HTTP checks mounted as mcp-authz mounts them (so the configured
// path picks the handler), and compares what the check understood with the
// client's request. The client also sent spoofed X-Original-* and
// X-Forwarded-* headers, which the configuration removes or overwrites, and
// its Mcp-Method and Mcp-Name headers, which must reach the check. The
// subtest "uncleaned" puts back the spoofed headers the configuration
// removed: the check at the configured path must ignore them by itself.
// It then checks that the proxy copies every identity header the check
// answers with.
func TestProxiesAskTheCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		build func(t *testing.T, client http.Header) (*http.Request, []string)
	}{
		{"nginx", nginxSubrequest},
		{"caddy", caddySubrequest},
		{"traefik", traefikSubrequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client := http.Header{"Authorization": {clientToken},
				"Mcp-Method": {"tools/call"}, "Mcp-Name": {"add"}}
			for k, v := range spoofed {
				client.Set(k, v)
			}
			req, copied := tt.build(t, client)
			w := askCheck(t, req)
			t.Run("uncleaned", func(t *testing.T) {
				uncleaned := req.Clone(t.Context())
				for k, v := range spoofed {
					if uncleaned.Header.Get(k) == "" {
						uncleaned.Header.Set(k, v)
					}
				}
				askCheck(t, uncleaned)
			})
			for _, name := range []string{authz.HeaderClientID, authz.HeaderSubject,
				authz.HeaderScope} {
				if w.Header().Get(name) == "" {
					t.Errorf("the check's answer lacks %s", name)
				}
				if !slices.ContainsFunc(copied, func(c string) bool { return strings.EqualFold(c, name) }) {
					t.Errorf("the proxy does not copy %s from the answer (copies %v)", name, copied)
				}
			}
		})
	}
}

// askCheck sends req to the HTTP checks, mounted as mcp-authz mounts them,
// and requires that the check understood the client's request and allowed
// it.
func askCheck(t *testing.T, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := &recorder{}
	mux := http.NewServeMux()
	envoy.MountHTTPChecks(mux, rec, slog.New(slog.DiscardHandler))
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	if w.Code != http.StatusOK || rec.got == nil {
		t.Fatalf("check at %s answered %d (%s); want 200 after asking the Checker",
			req.URL.Path, w.Code, w.Body)
	}
	want := checkSeen{Method: clientMethod, Scheme: "http", Host: clientHost,
		Path: clientURI, Authorization: []string{clientToken},
		MCPMethod: "tools/call", MCPName: "add"}
	got := checkSeen{Method: rec.got.Method, Scheme: rec.got.Scheme, Host: rec.got.Host,
		Path: rec.got.Path, Authorization: rec.got.Authorization}
	if rec.got.Header != nil {
		got.MCPMethod, got.MCPName = rec.got.Header("mcp-method"), rec.got.Header("mcp-name")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the check at %s understood another request (-want +got):\n%s",
			req.URL.Path, diff)
	}
	return w
}

func readFile(t *testing.T, parts ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{".."}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// nginxSubrequest: auth_request passes the client's headers, then the check
// location's proxy_set_header lines apply (an empty value removes the
// header); the subrequest is a GET to proxy_pass's URI.
func nginxSubrequest(t *testing.T, client http.Header) (*http.Request, []string) {
	t.Helper()
	top, err := parseNginx(readFile(t, "examples", "nginx", "mcp-authz.conf"))
	if err != nil {
		t.Fatal(err)
	}
	locs := find(find(top, "server")[0].block, "location")
	mcp := locate(locs, "/mcp")
	check := locate(locs, find(mcp.block, "auth_request")[0].args[0])
	vars := strings.NewReplacer("$request_method", clientMethod, "$request_uri", clientURI,
		"$http_host", clientHost, "$host", "mcp.example", "$scheme", "http",
		"$request_id", "req-1")

	target := find(check.block, "proxy_pass")[0].args[0]
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.Header = client.Clone()
	req.Host = "mcp_authz" // the upstream's name, unless Host is set
	for _, d := range find(check.block, "proxy_set_header") {
		v := vars.Replace(d.args[1])
		switch {
		case strings.EqualFold(d.args[0], "Host"):
			req.Host = v
		case v == "":
			req.Header.Del(d.args[0])
		default:
			req.Header.Set(d.args[0], v)
		}
	}

	var copied []string
	for _, d := range find(mcp.block, "auth_request_set") {
		if name, ok := strings.CutPrefix(d.args[1], "$upstream_http_"); ok {
			copied = append(copied, strings.ReplaceAll(name, "_", "-"))
		}
	}
	return req, copied
}

// caddySubrequest: forward_auth passes the client's headers with the
// header_up changes of the configuration, sets X-Forwarded-Method and
// X-Forwarded-Uri, and reverse_proxy sets X-Forwarded-For, -Proto and -Host
// (overwriting the client's, as no proxy is trusted); the subrequest is a
// GET to the configured uri and keeps the client's Host.
func caddySubrequest(t *testing.T, client http.Header) (*http.Request, []string) {
	t.Helper()
	top, err := parseCaddyfile(readFile(t, "examples", "caddy", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	var forward *caddyBlock
	walkCaddy(top, nil, func(b *caddyBlock, _ []*caddyBlock) {
		if len(b.args) > 0 && b.args[0] == "forward_auth" {
			forward = b
		}
	})
	if forward == nil {
		t.Fatal("no forward_auth in the Caddyfile")
	}
	uri, copied := "", []string(nil)
	hdr := client.Clone()
	for _, d := range forward.block {
		switch d.args[0] {
		case "uri":
			uri = d.args[1]
		case "copy_headers":
			copied = d.args[1:]
		case "header_up":
			if name, ok := strings.CutPrefix(d.args[1], "-"); ok {
				hdr.Del(name)
			} else if len(d.args) == 3 {
				hdr.Set(d.args[1], d.args[2])
			}
		}
	}
	hdr.Set("X-Forwarded-Method", clientMethod)
	hdr.Set("X-Forwarded-Uri", clientURI)
	hdr.Set("X-Forwarded-For", "192.0.2.1")
	hdr.Set("X-Forwarded-Proto", "http")
	hdr.Set("X-Forwarded-Host", clientHost)

	req := httptest.NewRequest(http.MethodGet, "http://"+clientHost+uri, nil)
	req.Header = hdr
	return req, copied
}

// traefikSubrequest: the router's middlewares apply in order up to
// forwardAuth, which passes the remaining headers (only authRequestHeaders
// when set) and, with trustForwardHeader false, sets the X-Forwarded-*
// headers itself; the subrequest is a GET to the configured address.
func traefikSubrequest(t *testing.T, client http.Header) (*http.Request, []string) {
	t.Helper()
	docs, err := readYAML(filepath.Join("..", "examples", "traefik", "dynamic.yml"))
	if err != nil {
		t.Fatal(err)
	}
	h := get(docs[0], "http")
	forward, hdr, _, unknown := traefikChain(get(h, "routers", "mcp"), mapping(h, "middlewares"),
		client)
	if forward == nil || len(unknown) > 0 {
		t.Fatalf("router mcp: no forwardAuth, or unknown middlewares %v", unknown)
	}
	if str(forward, "trustForwardHeader") != "false" {
		t.Fatal("this model covers trustForwardHeader: false only")
	}
	hdr.Set("X-Forwarded-Method", clientMethod)
	hdr.Set("X-Forwarded-Proto", "http")
	hdr.Set("X-Forwarded-Host", clientHost)
	hdr.Set("X-Forwarded-Uri", clientURI)
	hdr.Set("X-Forwarded-For", "192.0.2.1")

	req := httptest.NewRequest(http.MethodGet, str(forward, "address"), nil)
	req.Header = hdr
	return req, strs(forward, "authResponseHeaders")
}
