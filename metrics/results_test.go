package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/envoy"
)

// checkerFunc is an envoy.Checker from a function.
type checkerFunc func(context.Context, *authz.Request) *authz.Decision

func (f checkerFunc) Check(ctx context.Context, req *authz.Request) *authz.Decision {
	return f(ctx, req)
}

var (
	allowAll = checkerFunc(func(context.Context, *authz.Request) *authz.Decision {
		return &authz.Decision{Allow: true, Reason: authz.ReasonOK, Status: http.StatusOK}
	})
	denyAll = checkerFunc(func(context.Context, *authz.Request) *authz.Decision {
		return &authz.Decision{Reason: authz.ReasonNoToken, Status: http.StatusUnauthorized}
	})
	panicking = checkerFunc(func(context.Context, *authz.Request) *authz.Decision {
		panic("checker broke")
	})
	noDecision = checkerFunc(func(context.Context, *authz.Request) *authz.Decision {
		return nil
	})
)

// TestDecisionResults answers checks through the envoy package's real HTTP
// and gRPC paths with the metrics hook attached, and reads the result label
// from the exposition: a proxy that does not name the original request and
// a checker that fails are errors, not denials, on both paths.
func TestDecisionResults(t *testing.T) {
	t.Parallel()
	nginx := func(hdr map[string]string) func(envoy.Checker, envoy.Options) {
		return func(c envoy.Checker, o envoy.Options) {
			h := envoy.NewProxyCheckHandler(c, discard(), envoy.NginxAuthRequest, o)
			r := httptest.NewRequest(http.MethodGet, envoy.NginxCheckPath, nil)
			for k, v := range hdr {
				r.Header.Set(k, v)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
	}
	envoyHTTP := func(c envoy.Checker, o envoy.Options) {
		h := envoy.NewHTTPHandler(c, discard(), envoy.EnvoyCheckPrefix, o)
		r := httptest.NewRequest(http.MethodPost, envoy.EnvoyCheckPrefix+"/mcp", nil)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	grpcCheck := func(ctx context.Context) func(envoy.Checker, envoy.Options) {
		return func(c envoy.Checker, o envoy.Options) {
			srv := envoy.NewAuthorizationServer(c, discard(), o)
			cr := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Request: &authv3.AttributeContext_Request{
					Http: &authv3.AttributeContext_HttpRequest{
						Method: "POST", Host: "localhost:8080", Path: "/mcp", Scheme: "http",
					},
				},
			}}
			if _, err := srv.Check(ctx, cr); err != nil {
				t.Errorf("Check: %v", err)
			}
		}
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	named := map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/mcp"}

	tests := []struct {
		name    string
		checker envoy.Checker
		run     func(envoy.Checker, envoy.Options)
		want    string
	}{
		{"nginx without X-Original-URI", allowAll,
			nginx(map[string]string{"X-Original-Method": "POST"}),
			`{reason="original_request_unknown",result="error"} 1`},
		{"nginx denied", denyAll, nginx(named), `{reason="no_token",result="deny"} 1`},
		{"nginx allowed", allowAll, nginx(named), `{reason="ok",result="allow"} 1`},
		{"envoy http checker panics", panicking, envoyHTTP,
			`{reason="internal_error",result="error"} 1`},
		{"grpc checker panics", panicking, grpcCheck(t.Context()),
			`{reason="internal_error",result="error"} 1`},
		{"grpc no decision", noDecision, grpcCheck(t.Context()),
			`{reason="internal_error",result="error"} 1`},
		{"grpc deadline passed", allowAll, grpcCheck(cancelled),
			`{reason="deadline_exceeded",result="error"} 1`},
		{"grpc denied", denyAll, grpcCheck(t.Context()), `{reason="no_token",result="deny"} 1`},
		{"grpc allowed", allowAll, grpcCheck(t.Context()), `{reason="ok",result="allow"} 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := New()
			tt.run(tt.checker, envoy.Options{Observe: m.ObserveDecision})
			text := exposition(t, m)
			if want := "mcp_authz_decisions_total" + tt.want; !strings.Contains(text, want) {
				t.Errorf("exposition lacks %q; decisions:\n%s", want, decisionLines(text))
			}
		})
	}
}

// TestResult classifies decisions by their answer.
func TestResult(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		d    authz.Decision
		want string
	}{
		{"allowed", authz.Decision{Allow: true, Status: http.StatusOK}, resultAllow},
		{"unauthorized", authz.Decision{Status: http.StatusUnauthorized}, resultDeny},
		{"forbidden", authz.Decision{Status: http.StatusForbidden}, resultDeny},
		{"no status is a denial", authz.Decision{}, resultDeny},
		{"server error", authz.Decision{Status: http.StatusInternalServerError}, resultError},
		{"unavailable", authz.Decision{Status: http.StatusServiceUnavailable}, resultError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := result(&tt.d); got != tt.want {
				t.Errorf("result = %q, want %q", got, tt.want)
			}
		})
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// exposition returns m's metrics in the text format.
func exposition(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	b, err := io.ReadAll(rec.Body)
	if err != nil {
		t.Fatalf("reading the exposition: %v", err)
	}
	return string(b)
}

// decisionLines returns the decisions_total samples of an exposition.
func decisionLines(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "mcp_authz_decisions_total{") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
