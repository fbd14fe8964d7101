package envoy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mcp-authz/mcp-authz/authz"
)

const checkPrefix = "/ext_authz"

// subrequest builds an authorization subrequest to the handler.
func subrequest(method, target, host string, body string, hdr ...string) *http.Request {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return req
}

const token = "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig"

func TestHTTPHandlerTranslatesRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		prefix string // checkPrefix when empty; "-" for none
		req    *http.Request
		want   seenRequest
	}{
		{
			name: "envoy http_service",
			req: subrequest("POST", checkPrefix+"/mcp?session=1", "localhost:8080", "",
				"Authorization", token, "X-Request-Id", requestID, "Mcp-Method", "tools/call"),
			want: seenRequest{
				DecisionID: requestID, Method: "POST", Scheme: "http",
				Host: "localhost:8080", Path: "/mcp?session=1",
				Authorization: []string{token},
				Headers:       map[string]string{"host": "localhost:8080", "mcp-method": "tools/call"},
			},
		},
		{
			name: "envoy http_service, root path",
			req:  subrequest("GET", checkPrefix, "localhost:8080", "", "X-Request-Id", "r1"),
			want: seenRequest{
				DecisionID: "r1", Method: "GET", Scheme: "http", Host: "localhost:8080", Path: "/",
				Headers: map[string]string{"host": "localhost:8080"},
			},
		},
		{
			name: "envoy http_service, escaped path and query kept",
			req: subrequest("GET", checkPrefix+"/mcp/a%2Fb?q=%20x", "h", "",
				"X-Request-Id", "r1", "X-Forwarded-Proto", "https"),
			want: seenRequest{
				DecisionID: "r1", Method: "GET", Scheme: "https", Host: "h", Path: "/mcp/a%2Fb?q=%20x",
				Headers: map[string]string{"host": "h"},
			},
		},
		{
			name: "envoy http_service with body",
			req: subrequest("POST", checkPrefix+"/mcp", "h", `{"jsonrpc":"2.0"}`,
				"X-Request-Id", "r1", "X-Envoy-Auth-Partial-Body", "true",
				"Content-Type", "application/json"),
			want: seenRequest{
				DecisionID: "r1", Method: "POST", Scheme: "http", Host: "h", Path: "/mcp",
				Body: `{"jsonrpc":"2.0"}`, BodyPartial: true,
				Headers: map[string]string{"host": "h", "content-type": "application/json"},
			},
		},
		{
			name: "envoy http_service ignores the proxies' headers",
			req: subrequest("DELETE", checkPrefix+"/mcp", "h", "",
				"X-Original-URI", "/other", "X-Original-Method", "GET", "X-Original-Host", "o.test",
				"X-Forwarded-Uri", "/other", "X-Forwarded-Method", "GET",
				"X-Forwarded-Host", "f.test", "X-Request-Id", "r6"),
			want: seenRequest{
				DecisionID: "r6", Method: "DELETE", Scheme: "http", Host: "h", Path: "/mcp",
				Headers: map[string]string{"host": "h"},
			},
		},
		{
			name:   "no prefix",
			prefix: "-",
			req:    subrequest("PUT", "/mcp/x", "h", "", "X-Request-Id", "r8"),
			want: seenRequest{
				DecisionID: "r8", Method: "PUT", Scheme: "http", Host: "h", Path: "/mcp/x",
				Headers: map[string]string{"host": "h"},
			},
		},
		{
			name: "two authorization headers stay apart",
			req: subrequest("GET", checkPrefix+"/mcp", "h", "",
				"Authorization", "Bearer a", "Authorization", "Bearer b", "X-Request-Id", "r7"),
			want: seenRequest{
				DecisionID: "r7", Method: "GET", Scheme: "http", Host: "h", Path: "/mcp",
				Authorization: []string{"Bearer a", "Bearer b"},
				Headers:       map[string]string{"host": "h"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fc := &fakeChecker{decision: allowDecision}
			prefix := checkPrefix
			switch tt.prefix {
			case "":
			case "-":
				prefix = ""
			default:
				prefix = tt.prefix
			}
			rec := httptest.NewRecorder()
			NewHTTPHandler(fc, discard, prefix).ServeHTTP(rec, tt.req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200", rec.Code)
			}
			if diff := cmp.Diff([]seenRequest{tt.want}, fc.calls(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("request seen by the checker (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHTTPHandlerPathOutsidePrefix(t *testing.T) {
	t.Parallel()
	for _, target := range []string{"/mcp", "/ext_authzmcp", "/other/ext_authz"} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			fc := &fakeChecker{decision: allowDecision}
			rec := httptest.NewRecorder()
			NewHTTPHandler(fc, discard, checkPrefix+"/").ServeHTTP(rec,
				subrequest("GET", target, "h", ""))
			if rec.Code != http.StatusNotFound {
				t.Errorf("status = %d, want 404", rec.Code)
			}
			if n := len(fc.calls()); n != 0 {
				t.Errorf("checker called %d times, want 0", n)
			}
		})
	}
}

// answer is the part of a handler's response the tests compare.
type answer struct {
	Status  int
	Headers map[string]string
	Body    string
}

func answerOf(resp *http.Response) answer {
	a := answer{Status: resp.StatusCode, Headers: map[string]string{}}
	for _, k := range []string{
		"X-Mcp-Client-Id", "X-Mcp-Subject", "X-Mcp-Scope", "X-Envoy-Auth-Headers-To-Remove",
		"Www-Authenticate", "Content-Type", "Cache-Control",
	} {
		if vs, ok := resp.Header[k]; ok {
			a.Headers[k] = strings.Join(vs, "|")
		}
	}
	b, _ := io.ReadAll(resp.Body)
	a.Body = string(b)
	return a
}

func TestHTTPHandlerAnswerShape(t *testing.T) {
	t.Parallel()
	jsonDeny := func(status int, challenge, body string) answer {
		a := answer{Status: status, Body: body, Headers: map[string]string{
			"Content-Type": "application/json", "Cache-Control": "no-store",
		}}
		if challenge != "" {
			a.Headers["Www-Authenticate"] = challenge
		}
		return a
	}
	tests := []struct {
		name    string
		checker *fakeChecker
		want    answer
	}{
		{
			name:    "allow",
			checker: &fakeChecker{decision: allowDecision},
			want: answer{Status: 200, Headers: map[string]string{
				"X-Mcp-Client-Id":                "client-1",
				"X-Mcp-Subject":                  "alice",
				"X-Mcp-Scope":                    "mcp:tools mcp:resources",
				"X-Envoy-Auth-Headers-To-Remove": "authorization",
				"Cache-Control":                  "no-store",
			}},
		},
		{
			name: "allow with empty and invalid identity values",
			checker: &fakeChecker{decision: &authz.Decision{
				Allow: true, Reason: authz.ReasonOK, ClientID: "c", Subject: "x\ny",
			}},
			want: answer{Status: 200, Headers: map[string]string{
				"X-Mcp-Client-Id":                "c",
				"X-Mcp-Subject":                  "",
				"X-Mcp-Scope":                    "",
				"X-Envoy-Auth-Headers-To-Remove": "authorization",
				"Cache-Control":                  "no-store",
			}},
		},
		{
			name:    "deny 401",
			checker: &fakeChecker{decision: denyNoToken},
			want:    jsonDeny(401, challenge, `{"error":"invalid_token"}`),
		},
		{
			name:    "deny 403",
			checker: &fakeChecker{decision: denyScope},
			want: jsonDeny(403, denyScope.WWWAuthenticate,
				`{"error":"insufficient_scope"}`),
		},
		{
			name:    "deny without status",
			checker: &fakeChecker{decision: &authz.Decision{Reason: authz.ReasonUnknownClient}},
			want:    jsonDeny(403, "", `{"error":"access_denied","reason":"unknown_client"}`),
		},
		{
			name:    "checker panics",
			checker: &fakeChecker{decision: allowDecision, panics: true},
			want: jsonDeny(503, "",
				`{"error":"temporarily_unavailable","reason":"internal_error"}`),
		},
	}
	// One real loopback server for the whole table: the answer must survive
	// a real HTTP round trip, as proxies see it.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(NewHTTPHandler(tt.checker, discard, checkPrefix))
			t.Cleanup(srv.Close)
			req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+checkPrefix+"/mcp", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", token)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			defer resp.Body.Close()
			if diff := cmp.Diff(tt.want, answerOf(resp)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHTTPHandlerExpiredContext(t *testing.T) {
	t.Parallel()
	fc := &fakeChecker{decision: allowDecision}
	rec := &reasonRecorder{}
	h := NewHTTPHandler(fc, discard, checkPrefix, Options{Observe: rec.observe})
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	req := subrequest("GET", checkPrefix+"/mcp", "h", "").WithContext(ctx)

	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", w.Code)
	}
	if n := len(fc.calls()); n != 0 {
		t.Errorf("checker called %d times, want 0", n)
	}
	if diff := cmp.Diff([]authz.Reason{authz.ReasonDeadline}, rec.reasons()); diff != "" {
		t.Errorf("observed reasons (-want +got):\n%s", diff)
	}
}

func TestHTTPHandlerLargeBodyIsPartial(t *testing.T) {
	t.Parallel()
	fc := &fakeChecker{decision: allowDecision}
	body := strings.Repeat("x", maxCheckBody+10)
	w := httptest.NewRecorder()
	NewHTTPHandler(fc, discard, "").ServeHTTP(w, subrequest("POST", "/mcp", "h", body))
	calls := fc.calls()
	if len(calls) != 1 {
		t.Fatalf("checker called %d times, want 1", len(calls))
	}
	if got := len(calls[0].Body); got != maxCheckBody || !calls[0].BodyPartial {
		t.Errorf("body length %d partial %v, want %d true", got, calls[0].BodyPartial, maxCheckBody)
	}
}
