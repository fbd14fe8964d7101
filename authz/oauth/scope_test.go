package oauth

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

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

var (
	consentScopeRe = regexp.MustCompile(`<li><code>([^<]*)</code>`)
	extraScopeRe   = regexp.MustCompile(`<li><code>([^<]*)</code> <em\s+class="extra">`)
)

// TestScopeBeyondRegistration follows a dynamically registered client that
// registered "mcp:read mcp:write" and later steps up to mcp:admin without
// registering again, as MCP clients do after a 403 insufficient_scope. The
// step-up is allowed (see requestedScope), but not silently: the remembered
// consent does not cover it, so the consent page comes back, lists every
// scope the token will carry and marks the one beyond the registration.
func TestScopeBeyondRegistration(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withResources(authz.Resource{URL: testResource,
		Scopes:         []string{"mcp:read", "mcp:write", "mcp:admin"},
		RequiredScopes: []string{"mcp:read"}}))
	client := e.register(map[string]any{
		"client_name": "Stepper", "redirect_uris": []string{webRedirect},
		"token_endpoint_auth_method": "none", "scope": "mcp:read mcp:write",
	})["client_id"].(string)
	b := e.browser()

	steps := []struct {
		name, scope string
		wantExtra   []string
	}{
		{"registered scopes", "mcp:read mcp:write", nil},
		{"step-up", "mcp:read mcp:write mcp:admin", []string{"mcp:admin"}},
	}
	for i, st := range steps {
		verifier, challenge := pkce()
		params := authParams(client, webRedirect, challenge)
		params.Set("scope", st.scope)
		var resp *http.Response
		if i == 0 {
			resp = e.login(b, params)
		} else {
			resp = b.get(e.issuer + "/authorize?" + params.Encode())
		}
		page := readBody(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `value="allow"`) {
			t.Fatalf("%s: status %d, want the consent page:\n%s", st.name, resp.StatusCode, page)
		}
		shown := submatches(consentScopeRe, page)
		if diff := cmp.Diff(strings.Fields(st.scope), shown); diff != "" {
			t.Errorf("%s: scopes on the page (-want +got):\n%s", st.name, diff)
		}
		if diff := cmp.Diff(st.wantExtra, submatches(extraScopeRe, page)); diff != "" {
			t.Errorf("%s: scopes marked as beyond the registration (-want +got):\n%s",
				st.name, diff)
		}

		action, f := parseForm(t, e.issuer, page)
		f.Set("consent", "allow")
		resp = b.post(action, f)
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" {
			t.Fatalf("%s: consent answered %d, Location %q", st.name, resp.StatusCode,
				resp.Header.Get("Location"))
		}
		tresp, tok := e.token(url.Values{
			"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
			"code_verifier": {verifier}, "client_id": {client},
			"redirect_uri": {webRedirect}, "resource": {testResource},
		}, "", "")
		if tresp.StatusCode != http.StatusOK {
			t.Fatalf("%s: token: %d %v", st.name, tresp.StatusCode, tok)
		}
		claims, _, err := e.tokens.Verify(tok["access_token"].(string), time.Now())
		if err != nil {
			t.Fatalf("%s: verifying the access token: %v", st.name, err)
		}
		// Every scope granted was on the page the user allowed.
		if diff := cmp.Diff(shown, strings.Fields(claims.Scope)); diff != "" {
			t.Errorf("%s: token scope against the page (-page +token):\n%s", st.name, diff)
		}
	}
}

// submatches returns the first group of every match of re in s.
func submatches(re *regexp.Regexp, s string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}
