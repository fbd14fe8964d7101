package oauth

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-authz/mcp-authz/authz"
)

func TestAuthorizeScopeAndResource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withResources(
		authz.Resource{URL: "https://mcp.example/", Scopes: []string{"files:read", "files:write"},
			RequiredScopes: []string{"files:read"}},
		authz.Resource{URL: "https://mcp.example/open"},
	))
	withScope := e.register(map[string]any{
		"redirect_uris": []string{webRedirect}, "token_endpoint_auth_method": "none",
		"scope": "files:write other offline_access",
	})["client_id"].(string)
	plain := e.publicClient(webRedirect)
	_, challenge := pkce()
	tests := []struct {
		name         string
		client       string
		resource     []string
		scope        string
		wantResource string
		wantScope    []string
		wantError    string
	}{
		{"origin resource with slash", plain, []string{"https://mcp.example/"}, "files:write",
			"https://mcp.example", []string{"files:write"}, ""},
		{"origin resource without slash", plain, []string{"https://MCP.example"}, "",
			"https://mcp.example", []string{"files:read"}, ""},
		{"registered scope is the default", withScope, []string{"https://mcp.example"}, "",
			"https://mcp.example", []string{"files:write"}, ""},
		{"offline_access dropped", plain, []string{"https://mcp.example"},
			"offline_access files:read", "https://mcp.example", []string{"files:read"}, ""},
		{"only offline_access", plain, []string{"https://mcp.example"}, "offline_access",
			"https://mcp.example", []string{"files:read"}, ""},
		{"resource without scopes takes any", plain, []string{"https://mcp.example/open"},
			"anything", "https://mcp.example/open", []string{"anything"}, ""},
		{"resource without scopes, none asked", withScope, []string{"https://mcp.example/open"},
			"", "https://mcp.example/open", []string{"files:write", "other"}, ""},
		{"several resources need one named", plain, nil, "", "", nil, "invalid_request"},
		{"path must match exactly", plain, []string{"https://mcp.example/open/"}, "", "", nil,
			"invalid_target"},
		{"same resource twice is one", plain,
			[]string{"https://mcp.example", "https://mcp.example/"}, "",
			"https://mcp.example", []string{"files:read"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := authParams(tt.client, webRedirect, challenge)
			q.Del("resource")
			q["resource"] = tt.resource
			q.Set("scope", tt.scope)
			req, fatal, rerr := e.srv.parseAuthorize(t.Context(), q, DevUseAuthorize)
			if fatal != nil {
				t.Fatalf("fatal error %v", fatal)
			}
			if tt.wantError != "" {
				if rerr == nil || rerr.Code != tt.wantError {
					t.Fatalf("error %v, want %s", rerr, tt.wantError)
				}
				return
			}
			if rerr != nil {
				t.Fatalf("error %v", rerr)
			}
			if req.resource != tt.wantResource {
				t.Errorf("resource = %q, want %q", req.resource, tt.wantResource)
			}
			if diff := cmp.Diff(tt.wantScope, req.scope); diff != "" {
				t.Errorf("scope (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOriginResourceFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withResources(authz.Resource{URL: "https://mcp.example"}))
	client := e.publicClient("https://claude.ai/api/mcp/auth_callback")
	verifier, challenge := pkce()
	q := authParams(client, "https://claude.ai/api/mcp/auth_callback", challenge)
	q.Set("resource", "https://mcp.example/")
	q.Del("scope")
	code := e.authorize(q)
	f := codeForm(client, code, verifier, "https://claude.ai/api/mcp/auth_callback")
	f.Set("resource", "https://mcp.example/")
	// Public clients that send an empty secret in Basic are accepted as none.
	f.Del("client_id")
	resp, got := e.token(f, client, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d %v", resp.StatusCode, got)
	}
	claims, _, err := e.tokens.Verify(got["access_token"].(string), e.srv.now())
	if err != nil {
		t.Fatal(err)
	}
	if claims.Audience != "https://mcp.example" {
		t.Errorf("aud = %q, want https://mcp.example", claims.Audience)
	}
	// The refresh answer for a public client with an empty client_secret.
	resp, got = e.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {client},
		"client_secret": {""}, "refresh_token": {got["refresh_token"].(string)},
		"resource": {"https://mcp.example"}}, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("refresh: %d %v", resp.StatusCode, got)
	}
}
