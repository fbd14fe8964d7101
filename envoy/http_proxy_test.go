package envoy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mcp-authz/mcp-authz/authz"
)

// The headers each proxy family uses for the original request, with values
// that differ between the families, so a test can tell whose were read.
var (
	nginxNames = []string{
		"X-Original-Method", "PATCH", "X-Original-URI", "/from-nginx?n=1",
		"X-Original-Host", "nginx.test",
	}
	forwardNames = []string{
		"X-Forwarded-Method", "PUT", "X-Forwarded-Uri", "/from-forward?f=1",
		"X-Forwarded-Host", "forward.test",
	}
)

func join(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func TestProxyCheckHandlerTranslatesRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		convention HeaderConvention
		req        *http.Request
		want       seenRequest
	}{
		{
			name:       "nginx auth_request",
			convention: NginxAuthRequest,
			req: subrequest("GET", NginxCheckPath, "mcp-authz:9000", "",
				"X-Original-URI", "/mcp?session=1", "X-Original-Method", "POST",
				"X-Original-Host", "mcp.example.test", "X-Forwarded-Proto", "https",
				"Authorization", token, "X-Request-Id", "r2", "Mcp-Method", "tools/call"),
			want: seenRequest{
				DecisionID: "r2", Method: "POST", Scheme: "https", Host: "mcp.example.test",
				Path: "/mcp?session=1", Authorization: []string{token},
				Headers: map[string]string{"host": "mcp.example.test", "mcp-method": "tools/call"},
			},
		},
		{
			name:       "nginx keeping Host",
			convention: NginxAuthRequest,
			req: subrequest("GET", NginxCheckPath, "mcp.example.test", "",
				"X-Original-URI", "/mcp", "X-Original-Method", "DELETE", "X-Request-Id", "r3"),
			want: seenRequest{
				DecisionID: "r3", Method: "DELETE", Scheme: "http", Host: "mcp.example.test",
				Path: "/mcp", Headers: map[string]string{"host": "mcp.example.test"},
			},
		},
		{
			name:       "caddy forward_auth",
			convention: ForwardAuth,
			req: subrequest("GET", ForwardAuthCheckPath, "mcp.example.test", "",
				"X-Forwarded-Method", "POST", "X-Forwarded-Uri", "/mcp",
				"X-Forwarded-Host", "mcp.example.test", "X-Forwarded-Proto", "https",
				"Authorization", token, "X-Request-Id", "r4"),
			want: seenRequest{
				DecisionID: "r4", Method: "POST", Scheme: "https", Host: "mcp.example.test",
				Path: "/mcp", Authorization: []string{token},
				Headers: map[string]string{"host": "mcp.example.test"},
			},
		},
		{
			name:       "traefik forwardAuth, host list",
			convention: ForwardAuth,
			req: subrequest("GET", ForwardAuthCheckPath, "mcp-authz:9000", "",
				"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/mcp/sse?x=1",
				"X-Forwarded-Host", "mcp.example.test, proxy.internal",
				"X-Forwarded-Proto", "https", "Authorization", token, "X-Request-Id", "r5"),
			want: seenRequest{
				DecisionID: "r5", Method: "GET", Scheme: "https", Host: "mcp.example.test",
				Path: "/mcp/sse?x=1", Authorization: []string{token},
				Headers: map[string]string{"host": "mcp.example.test"},
			},
		},
		{
			// Only Envoy says whether it cut the body: a client's copy of the
			// header means nothing here.
			name:       "body kept, Envoy's partial-body header ignored",
			convention: ForwardAuth,
			req: subrequest("POST", ForwardAuthCheckPath, "h", `{"jsonrpc":"2.0"}`,
				"X-Forwarded-Method", "POST", "X-Forwarded-Uri", "/mcp",
				"X-Envoy-Auth-Partial-Body", "true", "X-Request-Id", "r6"),
			want: seenRequest{
				DecisionID: "r6", Method: "POST", Scheme: "http", Host: "h", Path: "/mcp",
				Body: `{"jsonrpc":"2.0"}`, Headers: map[string]string{"host": "h"},
			},
		},
		{
			name:       "subrequest's own path and query are not read",
			convention: NginxAuthRequest,
			req: subrequest("POST", "/anywhere/else?x=/evil", "h", "",
				"X-Original-URI", "/mcp", "X-Original-Method", "GET", "X-Request-Id", "r7"),
			want: seenRequest{
				DecisionID: "r7", Method: "GET", Scheme: "http", Host: "h", Path: "/mcp",
				Headers: map[string]string{"host": "h"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fc := &fakeChecker{decision: allowDecision}
			rec := httptest.NewRecorder()
			NewProxyCheckHandler(fc, discard, tt.convention).ServeHTTP(rec, tt.req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d (%s), want 200", rec.Code, rec.Body)
			}
			if diff := cmp.Diff([]seenRequest{tt.want}, fc.calls(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("request seen by the checker (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMountedChecksIgnoreOtherFamiliesHeaders sends each mount of
// MountHTTPChecks a subrequest that carries the other families' headers
// too, as a client can send them through a proxy that passes them on: the
// check must judge the request its own family names, or refuse.
func TestMountedChecksIgnoreOtherFamiliesHeaders(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	fc := &fakeChecker{decision: allowDecision}
	MountHTTPChecks(mux, fc, discard)

	// seen is the request the checker must see; the zero value means the
	// check must refuse without asking it.
	type seen struct{ Method, Host, Path string }
	tests := []struct {
		name   string
		method string
		target string
		host   string
		hdr    []string
		want   seen
	}{
		{"envoy, with nginx's and forward_auth's headers", "POST", "/ext_authz/mcp", "h",
			join(nginxNames, forwardNames), seen{"POST", "h", "/mcp"}},
		{"envoy at the bare prefix, with nginx's headers", "GET", "/ext_authz", "h",
			nginxNames, seen{"GET", "h", "/"}},
		{"envoy at the bare prefix, with forward_auth's headers", "GET", "/ext_authz", "h",
			forwardNames, seen{"GET", "h", "/"}},
		{"envoy asking about a proxy mount's path", "GET", "/ext_authz/check/nginx", "h",
			join(nginxNames, forwardNames), seen{"GET", "h", "/check/nginx"}},
		{"nginx, with forward_auth's headers", "GET", "/check/nginx", "authz",
			join(forwardNames, nginxNames), seen{"PATCH", "nginx.test", "/from-nginx?n=1"}},
		{"forward_auth, with nginx's headers", "GET", "/check/forward", "authz",
			join(nginxNames, forwardNames), seen{"PUT", "forward.test", "/from-forward?f=1"}},
		{"nginx, forward_auth's headers only", "GET", "/check/nginx", "authz",
			forwardNames, seen{}},
		{"forward_auth, nginx's headers only", "GET", "/check/forward", "authz",
			nginxNames, seen{}},
		{"nginx, its host missing, forward_auth's host present", "GET", "/check/nginx", "h",
			[]string{"X-Original-Method", "GET", "X-Original-URI", "/mcp",
				"X-Forwarded-Host", "forward.test"}, seen{"GET", "h", "/mcp"}},
		{"forward_auth, its host missing, nginx's host present", "GET", "/check/forward", "h",
			[]string{"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/mcp",
				"X-Original-Host", "nginx.test"}, seen{"GET", "h", "/mcp"}},
		{"forward_auth, a second X-Forwarded-Uri", "GET", "/check/forward", "h",
			join(forwardNames, []string{"X-Forwarded-Uri", "/other"}), seen{}},
		{"nginx, a second X-Original-Host", "GET", "/check/nginx", "h",
			join(nginxNames, []string{"X-Original-Host", "other.test"}), seen{}},
		{"nginx, a second X-Forwarded-Proto", "GET", "/check/nginx", "h",
			join(nginxNames, []string{"X-Forwarded-Proto", "http", "X-Forwarded-Proto", "https"}),
			seen{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the subtests share fc and read its last call.
			before := len(fc.calls())
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, subrequest(tt.method, tt.target, tt.host, "", tt.hdr...))
			calls := fc.calls()[before:]

			if tt.want == (seen{}) {
				if rec.Code != http.StatusInternalServerError || len(calls) != 0 {
					t.Fatalf("status %d after %d checks, want 500 without asking the checker",
						rec.Code, len(calls))
				}
				return
			}
			if rec.Code != http.StatusOK || len(calls) != 1 {
				t.Fatalf("status %d (%s) after %d checks, want 200 after one",
					rec.Code, rec.Body, len(calls))
			}
			got := seen{calls[0].Method, calls[0].Host, calls[0].Path}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("request judged (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMountHTTPChecksRoutes checks which handler, if any, each path
// reaches: the proxy mounts are exact, Envoy's prefix owns everything below
// it.
func TestMountHTTPChecksRoutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		target string
		want   string // the path the checker sees, or "404"
	}{
		{"/ext_authz", "/"},
		{"/ext_authz/", "/"},
		{"/ext_authz/mcp?x=1", "/mcp?x=1"},
		{"/ext_authz/check/forward", "/check/forward"},
		{"/check/nginx", "/orig"},
		{"/check/nginx?x=1", "/orig"},
		{"/check/forward", "/orig"},
		{"/check/nginx/mcp", "404"},
		{"/check/forward/", "404"},
		{"/check/", "404"},
		{"/check", "404"},
		{"/ext_authzx", "404"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			t.Parallel()
			mux := http.NewServeMux()
			fc := &fakeChecker{decision: allowDecision}
			MountHTTPChecks(mux, fc, discard)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, subrequest("GET", tt.target, "h", "",
				"X-Original-URI", "/orig", "X-Original-Method", "GET",
				"X-Forwarded-Uri", "/orig", "X-Forwarded-Method", "GET"))
			got := "404"
			if calls := fc.calls(); len(calls) == 1 && rec.Code == http.StatusOK {
				got = calls[0].Path
			} else if rec.Code != http.StatusNotFound {
				t.Fatalf("status %d after %d checks", rec.Code, len(calls))
			}
			if got != tt.want {
				t.Errorf("checker saw %q, want %q", got, tt.want)
			}
		})
	}
}

// TestProxyCheckHandlerRefusesUnnamedOriginal: a subrequest that does not
// name its original request unambiguously is answered 500 with a stable
// reason, observed, and never reaches the checker.
func TestProxyCheckHandlerRefusesUnnamedOriginal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		convention HeaderConvention
		hdr        []string
	}{
		{"nginx, nothing", NginxAuthRequest, nil},
		{"nginx, no method", NginxAuthRequest, []string{"X-Original-URI", "/mcp"}},
		{"nginx, no uri", NginxAuthRequest, []string{"X-Original-Method", "POST"}},
		{"nginx, empty method", NginxAuthRequest,
			[]string{"X-Original-Method", " ", "X-Original-URI", "/mcp"}},
		{"nginx, uri not a path", NginxAuthRequest,
			[]string{"X-Original-Method", "GET", "X-Original-URI", "http://evil.test/mcp"}},
		{"nginx, two methods", NginxAuthRequest, []string{"X-Original-Method", "GET",
			"X-Original-Method", "POST", "X-Original-URI", "/mcp"}},
		{"forward, nothing", ForwardAuth, nil},
		{"forward, no uri", ForwardAuth, []string{"X-Forwarded-Method", "POST"}},
		{"forward, uri without slash", ForwardAuth,
			[]string{"X-Forwarded-Method", "POST", "X-Forwarded-Uri", "mcp"}},
		{"forward, two hosts", ForwardAuth, []string{"X-Forwarded-Method", "GET",
			"X-Forwarded-Uri", "/mcp", "X-Forwarded-Host", "a", "X-Forwarded-Host", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fc := &fakeChecker{decision: allowDecision}
			rec := &reasonRecorder{}
			h := NewProxyCheckHandler(fc, discard, tt.convention, Options{Observe: rec.observe})
			w := httptest.NewRecorder()
			h.ServeHTTP(w, subrequest("GET", "/", "h", "", tt.hdr...))

			want := answer{Status: 500, Headers: map[string]string{
				"Content-Type": "application/json", "Cache-Control": "no-store",
			}, Body: `{"error":"server_error","reason":"original_request_unknown"}`}
			if diff := cmp.Diff(want, answerOf(w.Result())); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if n := len(fc.calls()); n != 0 {
				t.Errorf("checker called %d times, want 0", n)
			}
			if diff := cmp.Diff([]authz.Reason{reasonNoOriginal}, rec.reasons()); diff != "" {
				t.Errorf("observed reasons (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewProxyCheckHandlerUnknownConvention(t *testing.T) {
	t.Parallel()
	for _, c := range []HeaderConvention{conventionEnvoy, 7} {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Errorf("NewProxyCheckHandler(%v) did not panic", c)
				}
			}()
			NewProxyCheckHandler(&fakeChecker{}, discard, c)
		})
	}
}

// FuzzProxyCheck feeds arbitrary original-request headers of both families
// to both proxy handlers: they must never panic, answer 200 or the
// Decision's status after asking the checker about exactly their own
// family's method and URI, or 500 without asking it.
func FuzzProxyCheck(f *testing.F) {
	f.Add("POST", "/mcp?x=1", "h", "GET", "/other", "o", "Bearer t", true)
	f.Add("", "/mcp", "", "POST", "/mcp", "", "", false)
	f.Add("GET", "mcp", "a, b", "GET", "//x", "a,b", "Bearer a, Bearer b", true)
	f.Fuzz(func(t *testing.T, nMethod, nURI, nHost, fMethod, fURI, fHost, auth string,
		allow bool) {
		d := denyNoToken
		if allow {
			d = allowDecision
		}
		for _, c := range []HeaderConvention{NginxAuthRequest, ForwardAuth} {
			req := &http.Request{Method: "GET", URL: &url.URL{Path: "/"}, RequestURI: "/",
				Host: "h", Header: http.Header{}, Body: http.NoBody}
			for _, kv := range [][2]string{
				{"X-Original-Method", nMethod}, {"X-Original-Uri", nURI},
				{"X-Original-Host", nHost}, {"X-Forwarded-Method", fMethod},
				{"X-Forwarded-Uri", fURI}, {"X-Forwarded-Host", fHost}, {"Authorization", auth},
			} {
				req.Header[kv[0]] = []string{kv[1]}
			}
			fc := &fakeChecker{decision: d}
			w := httptest.NewRecorder()
			NewProxyCheckHandler(fc, discard, c).ServeHTTP(w, req)

			wantMethod, wantURI := nMethod, nURI
			if c == ForwardAuth {
				wantMethod, wantURI = fMethod, fURI
			}
			calls := fc.calls()
			switch {
			case w.Code == http.StatusInternalServerError && len(calls) == 0:
			case len(calls) != 1:
				t.Fatalf("%v: status %d after %d checks", c, w.Code, len(calls))
			case calls[0].Method != strings.TrimSpace(wantMethod) ||
				calls[0].Path != strings.TrimSpace(wantURI):
				t.Errorf("%v: checker saw %q %q, want %q %q", c, calls[0].Method,
					calls[0].Path, wantMethod, wantURI)
			case allow && w.Code != http.StatusOK, !allow && w.Code != http.StatusUnauthorized:
				t.Errorf("%v: status %d for allow=%v", c, w.Code, allow)
			}
		}
	})
}
