package envoy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/registry"
)

const (
	realIssuer   = "http://localhost:8080"
	realResource = "http://localhost:8080/mcp"
)

// realDecider builds the production Decider over a real registry in a
// temporary directory, with client-1 registered and client-gone revoked. It
// returns the Decider and a function minting tokens for resource.
func realDecider(t *testing.T) (*authz.Decider, func(clientID, scope string) string) {
	t.Helper()
	cfg := authz.Config{
		Issuer: realIssuer,
		Resources: []authz.Resource{{
			URL: realResource, Scopes: []string{"mcp:tools", "mcp:admin"},
			RequiredScopes: []string{"mcp:tools"},
		}},
	}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	store, err := registry.Open(t.Context(), t.TempDir(), registry.Options{Logger: discard})
	if err != nil {
		t.Fatalf("opening registry: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	keys, err := authz.NewKeys(t.Context(), store, discard)
	if err != nil {
		t.Fatalf("NewKeys: %v", err)
	}
	tokens := authz.NewTokens(cfg, keys)

	now := time.Now()
	for _, c := range []*registry.Client{
		{ID: "client-1", TokenEndpointAuthMethod: "none", CreatedAt: now},
		{ID: "client-gone", TokenEndpointAuthMethod: "none", CreatedAt: now, RevokedAt: now},
	} {
		if err := store.Update(t.Context(), func(tx *registry.Txn) error {
			return tx.PutClient(c)
		}); err != nil {
			t.Fatalf("registering %s: %v", c.ID, err)
		}
	}

	mint := func(clientID, scope string) string {
		t.Helper()
		tok, _, err := tokens.Mint(authz.AccessClaims{
			Subject: "alice", ClientID: clientID, Audience: realResource, Scope: scope,
			GrantID: "grant-1", IssuedAt: now,
		})
		if err != nil {
			t.Fatalf("Mint: %v", err)
		}
		return tok
	}
	return authz.NewDecider(cfg, tokens, store, discard), mint
}

// TestRealDeciderOverGRPC runs Envoy-shaped requests through a loopback gRPC
// server backed by the production Decider.
func TestRealDeciderOverGRPC(t *testing.T) {
	t.Parallel()
	decider, mint := realDecider(t)
	good := "Bearer " + mint("client-1", "mcp:tools")
	other := "Bearer " + mint("client-1", "mcp:tools mcp:admin")
	conn := startGRPC(t, decider)
	client := authv3.NewAuthorizationClient(conn)

	withAuth := func(v string) *authv3.CheckRequest {
		return envoyCheck(func(_ *attrs, h *httpAttrs) {
			h.Headers["authorization"] = v
		})
	}
	rawAuth := func(vs ...string) *authv3.CheckRequest {
		return envoyCheck(func(_ *attrs, h *httpAttrs) {
			kv := []string{":authority", "localhost:8080", ":path", "/mcp", ":method", "POST"}
			for _, v := range vs {
				kv = append(kv, "authorization", v)
			}
			h.Headers = nil
			h.HeaderMap = rawHeaders(kv...)
		})
	}
	type outcome struct {
		Code   codes.Code
		Status int32 // denied_response status; 0 on allow
		Reason string
	}
	tests := []struct {
		name string
		req  *authv3.CheckRequest
		want outcome
	}{
		{"valid token, headers map", withAuth(good), outcome{codes.OK, 0, "ok"}},
		{"valid token, header_map", rawAuth(good), outcome{codes.OK, 0, "ok"}},
		{"two tokens joined by Envoy", withAuth(good + "," + other),
			outcome{codes.PermissionDenied, 400, "multiple_tokens"}},
		{"two tokens in header_map", rawAuth(good, other),
			outcome{codes.PermissionDenied, 400, "multiple_tokens"}},
		{"no token", envoyCheck(func(_ *attrs, h *httpAttrs) {
			delete(h.Headers, "authorization")
		}), outcome{codes.Unauthenticated, 401, "no_token"}},
		{"garbage token", withAuth("Bearer abc.def.ghi"),
			outcome{codes.Unauthenticated, 401, "malformed_token"}},
		{"revoked client", withAuth("Bearer " + mint("client-gone", "mcp:tools")),
			outcome{codes.Unauthenticated, 401, "revoked_client"}},
		{"missing scope", withAuth("Bearer " + mint("client-1", "mcp:admin")),
			outcome{codes.PermissionDenied, 403, "insufficient_scope"}},
		{"unknown host", envoyCheck(func(_ *attrs, h *httpAttrs) {
			h.Host = "elsewhere.test"
			h.Headers["authorization"] = good
		}), outcome{codes.PermissionDenied, 403, "unknown_resource"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := client.Check(t.Context(), tt.req)
			if err != nil {
				t.Fatalf("Check RPC: %v", err)
			}
			assertWellFormed(t, resp)
			got := outcome{
				Code:   codes.Code(resp.GetStatus().GetCode()),
				Status: int32(resp.GetDeniedResponse().GetStatus().GetCode()),
				Reason: resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue(),
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}

			if got.Code == codes.OK {
				ok := resp.GetOkResponse()
				if diff := cmp.Diff([]string{"authorization"}, ok.GetHeadersToRemove()); diff != "" {
					t.Errorf("headers_to_remove (-want +got):\n%s", diff)
				}
				hdrs := map[string]string{}
				for _, h := range ok.GetHeaders() {
					hdrs[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
				}
				want := map[string]string{
					"x-mcp-client-id": "client-1", "x-mcp-subject": "alice",
					"x-mcp-scope": "mcp:tools",
				}
				if diff := cmp.Diff(want, hdrs); diff != "" {
					t.Errorf("upstream headers (-want +got):\n%s", diff)
				}
			}
			if got.Status == 401 {
				var challenge string
				for _, h := range resp.GetDeniedResponse().GetHeaders() {
					if h.GetHeader().GetKey() == "www-authenticate" {
						challenge = h.GetHeader().GetValue()
					}
				}
				if !strings.Contains(challenge, `resource_metadata="http://localhost:8080/`) {
					t.Errorf("WWW-Authenticate = %q, want a resource_metadata URL", challenge)
				}
			}
		})
	}
}

// TestRealDeciderOverHTTP runs nginx-, Traefik- and Envoy-shaped
// subrequests through the HTTP checks, mounted as mcp-authz mounts them and
// backed by the production Decider.
func TestRealDeciderOverHTTP(t *testing.T) {
	t.Parallel()
	decider, mint := realDecider(t)
	good := "Bearer " + mint("client-1", "mcp:tools")
	h := http.NewServeMux()
	MountHTTPChecks(h, decider, discard)

	tests := []struct {
		name       string
		req        *http.Request
		wantStatus int
	}{
		{"nginx, valid token", subrequest("GET", NginxCheckPath, "mcp-authz:9000", "",
			"X-Original-URI", "/mcp", "X-Original-Method", "POST",
			"X-Original-Host", "localhost:8080", "Authorization", good), 200},
		{"traefik, two tokens", subrequest("GET", ForwardAuthCheckPath, "mcp-authz:9000", "",
			"X-Forwarded-Uri", "/mcp", "X-Forwarded-Method", "POST",
			"X-Forwarded-Host", "localhost:8080", "X-Forwarded-Proto", "http",
			"Authorization", good, "Authorization", good), 400},
		{"envoy http_service, no token", subrequest("POST", checkPrefix+"/mcp",
			"localhost:8080", ""), 401},
		// A client of Caddy or Traefik asks for another host and path, and
		// names the protected resource in nginx's headers: its token must be
		// judged against the request it really makes.
		{"forward_auth, resource named in nginx's headers", subrequest("GET",
			ForwardAuthCheckPath, "mcp-authz:9000", "",
			"X-Forwarded-Uri", "/admin", "X-Forwarded-Method", "POST",
			"X-Forwarded-Host", "other:8080", "X-Forwarded-Proto", "http",
			"X-Original-URI", "/mcp", "X-Original-Method", "POST",
			"X-Original-Host", "localhost:8080", "Authorization", good), 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, tt.req)
			if w.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", w.Code, tt.wantStatus, w.Body)
			}
			if w.Code == 200 && w.Header().Get("X-Mcp-Client-Id") != "client-1" {
				t.Errorf("X-Mcp-Client-Id = %q, want client-1", w.Header().Get("X-Mcp-Client-Id"))
			}
		})
	}
}
