package oauth

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-authz/mcp-authz/authz"
)

func TestAuthorizationServerMetadataPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		issuerPath string
		path       string
		wantStatus int
		wantOIDC   bool
	}{
		{"root oauth", "", "/.well-known/oauth-authorization-server", 200, false},
		{"root openid", "", "/.well-known/openid-configuration", 200, true},
		{"inserted oauth", "/t1", "/.well-known/oauth-authorization-server/t1", 200, false},
		{"inserted openid", "/t1", "/.well-known/openid-configuration/t1", 200, true},
		{"appended openid", "/t1", "/t1/.well-known/openid-configuration", 200, true},
		{"appended oauth", "/t1", "/t1/.well-known/oauth-authorization-server", 200, false},
		{"other tenant", "/t1", "/.well-known/oauth-authorization-server/t2", 404, false},
		{"unknown path", "", "/.well-known/nothing", 404, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withIssuerPath(tt.issuerPath))
			resp := e.do(http.MethodGet, tt.path, nil, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus != 200 {
				return
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("Access-Control-Allow-Origin = %q, want *", got)
			}
			m := decodeJSON(t, resp)
			want := map[string]any{
				"issuer":                           e.issuer,
				"authorization_endpoint":           e.issuer + "/authorize",
				"token_endpoint":                   e.issuer + "/token",
				"registration_endpoint":            e.issuer + "/register",
				"revocation_endpoint":              e.issuer + "/revoke",
				"introspection_endpoint":           e.issuer + "/introspect",
				"jwks_uri":                         e.issuer + "/.well-known/jwks.json",
				"scopes_supported":                 []any{"mcp:read", "mcp:write"},
				"response_types_supported":         []any{"code"},
				"response_modes_supported":         []any{"query"},
				"grant_types_supported":            []any{"authorization_code", "refresh_token"},
				"code_challenge_methods_supported": []any{"S256"},
				"token_endpoint_auth_methods_supported": []any{
					"none", "client_secret_post", "client_secret_basic"},
				"revocation_endpoint_auth_methods_supported": []any{
					"none", "client_secret_post", "client_secret_basic"},
				"introspection_endpoint_auth_methods_supported": []any{
					"none", "client_secret_post", "client_secret_basic"},
				"authorization_response_iss_parameter_supported": true,
				"client_id_metadata_document_supported":          true,
			}
			if tt.wantOIDC {
				want["subject_types_supported"] = []any{"public"}
				want["id_token_signing_alg_values_supported"] = []any{"ES256"}
			}
			if diff := cmp.Diff(want, m); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEndpointsUnderIssuerPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withIssuerPath("/t1"))
	for _, p := range []string{"/t1/register", "/register", "/t1/.well-known/jwks.json"} {
		resp := e.do(http.MethodOptions, p, nil, nil)
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("OPTIONS %s: status %d, want 204", p, resp.StatusCode)
		}
	}
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp := e.do(http.MethodGet, "/.well-known/jwks.json", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	m := decodeJSON(t, resp)
	keys, _ := m["keys"].([]any)
	if len(keys) == 0 {
		t.Fatalf("no keys in %v", m)
	}
	if k := keys[0].(map[string]any); k["d"] != nil {
		t.Errorf("JWKS publishes a private key: %v", k)
	}
}

func TestProtectedResourceMetadata(t *testing.T) {
	t.Parallel()
	mcpA := authz.Resource{URL: "https://a.example/mcp", Scopes: []string{"a"}}
	mcpB := authz.Resource{URL: "https://b.example/mcp", Scopes: []string{"b"}}
	origin := authz.Resource{URL: "https://o.example/", Scopes: []string{"o"}}
	tools := authz.Resource{URL: "https://a.example/tools"}
	tests := []struct {
		name      string
		resources []authz.Resource
		host      string
		path      string
		want      string // resource; "" means 404
	}{
		{"one resource suffix", []authz.Resource{mcpA}, "a.example",
			"/.well-known/oauth-protected-resource/mcp", "https://a.example/mcp"},
		{"one resource root", []authz.Resource{mcpA}, "a.example",
			"/.well-known/oauth-protected-resource", "https://a.example/mcp"},
		{"one resource trailing slash", []authz.Resource{mcpA}, "a.example",
			"/.well-known/oauth-protected-resource/mcp/", "https://a.example/mcp"},
		{"one resource wrong suffix", []authz.Resource{mcpA}, "a.example",
			"/.well-known/oauth-protected-resource/other", ""},
		{"origin only root", []authz.Resource{origin, tools}, "o.example",
			"/.well-known/oauth-protected-resource", "https://o.example"},
		{"origin only slash", []authz.Resource{origin}, "o.example",
			"/.well-known/oauth-protected-resource/", "https://o.example"},
		{"same path by host a", []authz.Resource{mcpA, mcpB}, "a.example",
			"/.well-known/oauth-protected-resource/mcp", "https://a.example/mcp"},
		{"same path by host b", []authz.Resource{mcpA, mcpB}, "B.example:443",
			"/.well-known/oauth-protected-resource/mcp", "https://b.example/mcp"},
		{"same path unknown host", []authz.Resource{mcpA, mcpB}, "c.example",
			"/.well-known/oauth-protected-resource/mcp", ""},
		{"root picks by host", []authz.Resource{mcpA, mcpB}, "b.example",
			"/.well-known/oauth-protected-resource", "https://b.example/mcp"},
		{"root ambiguous", []authz.Resource{mcpA, tools}, "a.example",
			"/.well-known/oauth-protected-resource", ""},
		{"second path", []authz.Resource{mcpA, tools}, "a.example",
			"/.well-known/oauth-protected-resource/tools", "https://a.example/tools"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withResources(tt.resources...))
			resp := e.do(http.MethodGet, "http://"+tt.host+tt.path, nil, nil)
			if tt.want == "" {
				if resp.StatusCode != http.StatusNotFound {
					t.Fatalf("status = %d, want 404", resp.StatusCode)
				}
				return
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			m := decodeJSON(t, resp)
			if m["resource"] != tt.want {
				t.Errorf("resource = %v, want %s", m["resource"], tt.want)
			}
			if diff := cmp.Diff([]any{e.issuer}, m["authorization_servers"]); diff != "" {
				t.Errorf("authorization_servers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]any{"header"}, m["bearer_methods_supported"]); diff != "" {
				t.Errorf("bearer_methods_supported (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	paths := []string{
		"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration",
		"/.well-known/oauth-protected-resource/mcp", "/.well-known/jwks.json",
		"/register", "/token", "/revoke", "/introspect",
	}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			resp := e.do(http.MethodOptions, p, nil, map[string]string{
				"Origin":                         "http://localhost:6274",
				"Access-Control-Request-Method":  "POST",
				"Access-Control-Request-Headers": "content-type,mcp-protocol-version",
			})
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("status = %d, want 204", resp.StatusCode)
			}
			h := resp.Header
			if h.Get("Access-Control-Allow-Origin") != "*" ||
				h.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("origin headers: %v", h)
			}
			for _, want := range []string{"Authorization", "Content-Type", "MCP-Protocol-Version"} {
				if !strings.Contains(h.Get("Access-Control-Allow-Headers"), want) {
					t.Errorf("Access-Control-Allow-Headers = %q, missing %s",
						h.Get("Access-Control-Allow-Headers"), want)
				}
			}
			if !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
				t.Errorf("Access-Control-Allow-Methods = %q", h.Get("Access-Control-Allow-Methods"))
			}
		})
	}
	t.Run("not on authorize", func(t *testing.T) {
		resp := e.do(http.MethodOptions, "/authorize", nil, nil)
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("CORS on /authorize: %v", resp.Header)
		}
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status = %d, want 405", resp.StatusCode)
		}
	})
}
