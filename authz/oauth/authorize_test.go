package oauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/registry"
)

const (
	cursorRedirect = "cursor://anysphere.cursor-mcp/oauth/callback"
	webRedirect    = "https://cursor.com/oauth/callback"
)

func TestAuthorizeErrorsBeforeRedirect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, challenge := pkce()
	multi := e.register(map[string]any{
		"redirect_uris":              []string{cursorRedirect, webRedirect},
		"token_endpoint_auth_method": "none",
	})["client_id"].(string)
	revoked := e.publicClient(webRedirect)
	err := e.store.Update(t.Context(), func(tx *registry.Txn) error {
		c := tx.Client(revoked).Copy()
		c.RevokedAt = time.Now()
		return tx.PutClient(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		modify func(url.Values)
		want   string
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "nope") }, "invalid_client"},
		{"revoked client", func(q url.Values) { q.Set("client_id", revoked) }, "invalid_client"},
		{"missing client", func(q url.Values) { q.Del("client_id") }, "invalid_request"},
		{"unregistered redirect", func(q url.Values) {
			q.Set("redirect_uri", "https://evil.example/cb")
		}, "invalid_request"},
		{"redirect on other port", func(q url.Values) {
			q.Set("redirect_uri", "https://cursor.com:444/oauth/callback")
		}, "invalid_request"},
		{"absent redirect with several registered", func(q url.Values) {
			q.Del("redirect_uri")
		}, "invalid_request"},
		{"repeated redirect", func(q url.Values) {
			q.Add("redirect_uri", webRedirect)
		}, "invalid_request"},
		{"unknown client and bad everything", func(q url.Values) {
			q.Set("client_id", "nope")
			q.Set("response_type", "token")
			q.Del("code_challenge")
		}, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			q := authParams(multi, webRedirect, challenge)
			tt.modify(q)
			resp := e.do(http.MethodGet, "/authorize?"+q.Encode(), nil, nil)
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Fatalf("status %d, Location %q; want 400 without redirect",
					resp.StatusCode, resp.Header.Get("Location"))
			}
			if !strings.Contains(body, tt.want) ||
				!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Errorf("page does not name %s:\n%s", tt.want, body)
			}
			resp = e.do(http.MethodGet, "/authorize?"+q.Encode(), nil,
				map[string]string{"Accept": "application/json"})
			got := decodeJSON(t, resp)
			if resp.StatusCode != http.StatusBadRequest || got["error"] != tt.want {
				t.Errorf("JSON answer %d %v, want 400 %s", resp.StatusCode, got, tt.want)
			}
		})
	}
}

func TestAuthorizeErrorsRedirected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, challenge := pkce()
	client := e.publicClient(cursorRedirect)
	tests := []struct {
		name      string
		modify    func(url.Values)
		want      string
		wantState bool
	}{
		{"response type token", func(q url.Values) { q.Set("response_type", "token") },
			"unsupported_response_type", true},
		{"no response type", func(q url.Values) { q.Del("response_type") },
			"invalid_request", true},
		{"no challenge", func(q url.Values) { q.Del("code_challenge") }, "invalid_request", true},
		{"plain method", func(q url.Values) {
			q.Set("code_challenge_method", "plain")
		}, "invalid_request", true},
		{"absent method", func(q url.Values) { q.Del("code_challenge_method") },
			"invalid_request", true},
		{"short challenge", func(q url.Values) { q.Set("code_challenge", "abc") },
			"invalid_request", true},
		{"unknown resource", func(q url.Values) {
			q.Set("resource", "http://localhost:8080/other")
		}, "invalid_target", true},
		{"two resources", func(q url.Values) {
			q.Add("resource", "http://localhost:8080/other")
		}, "invalid_target", true},
		{"scope not offered", func(q url.Values) { q.Set("scope", "mcp:read admin") },
			"invalid_scope", true},
		{"state too long", func(q url.Values) { q.Set("state", strings.Repeat("s", 3000)) },
			"invalid_request", false},
		{"state with newline", func(q url.Values) { q.Set("state", "a\r\nb") },
			"invalid_request", false},
		{"prompt none without login", func(q url.Values) { q.Set("prompt", "none") },
			"login_required", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			q := authParams(client, cursorRedirect, challenge)
			tt.modify(q)
			resp := e.do(http.MethodGet, "/authorize?"+q.Encode(), nil, nil)
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("status %d, want 302: %s", resp.StatusCode, readBody(t, resp))
			}
			loc := resp.Header.Get("Location")
			if !strings.HasPrefix(loc, cursorRedirect+"?") {
				t.Fatalf("Location = %q, want the redirect URI", loc)
			}
			u, _ := url.Parse(loc)
			got := u.Query()
			if got.Get("error") != tt.want || got.Get("iss") != e.issuer {
				t.Errorf("error %q iss %q, want %s and %s", got.Get("error"), got.Get("iss"),
					tt.want, e.issuer)
			}
			if wantState := map[bool]string{true: "st-123"}[tt.wantState]; got.Get("state") !=
				wantState {
				t.Errorf("state = %q, want %q", got.Get("state"), wantState)
			}
		})
	}
}

func TestAuthorizeLoopbackPortIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.register(map[string]any{
		"redirect_uris":              []string{"http://127.0.0.1", "http://localhost:33418"},
		"token_endpoint_auth_method": "none",
	})["client_id"].(string)
	_, challenge := pkce()
	for _, redirect := range []string{"http://127.0.0.1:49152/", "http://localhost:1234"} {
		t.Run(redirect, func(t *testing.T) {
			resp := e.do(http.MethodGet, "/authorize?"+
				authParams(c, redirect, challenge).Encode(), nil, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, readBody(t, resp))
			}
			// An error after verification goes to the port that was asked for.
			q := authParams(c, redirect, challenge)
			q.Set("response_type", "token")
			resp = e.do(http.MethodGet, "/authorize?"+q.Encode(), nil, nil)
			if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, redirect+"?") {
				t.Errorf("Location = %q, want %s?...", loc, redirect)
			}
		})
	}
}

func TestFullCodeFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(cursorRedirect)
	verifier, challenge := pkce()
	params := authParams(client, cursorRedirect, challenge)
	params.Set("scope", "mcp:read mcp:write offline_access")
	b := e.browser()

	resp := b.get(e.issuer + "/authorize?" + params.Encode())
	page := readBody(t, resp)
	checkPageHeaders(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) {
		t.Fatalf("login page: status %d:\n%s", resp.StatusCode, page)
	}
	action, f := parseForm(t, e.issuer, page)
	for _, name := range []string{"username", "password", "csrf", "step", "client_id",
		"redirect_uri", "code_challenge", "state", "resource"} {
		if !f.Has(name) {
			t.Errorf("login form lacks %s: %v", name, f)
		}
	}
	f.Set("username", testUser)
	f.Set("password", testPassword)
	resp = b.post(action, f)
	page = readBody(t, resp)
	checkPageHeaders(t, resp)
	for _, want := range []string{"Test App", "anysphere.cursor-mcp", "mcp:read", "mcp:write",
		testResource, `value="deny"`} {
		if !strings.Contains(page, want) {
			t.Errorf("consent page does not show %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "offline_access") {
		t.Errorf("consent page shows offline_access")
	}
	action, f = parseForm(t, e.issuer, page)
	f.Set("consent", "allow")
	resp = b.post(action, f)
	resp.Body.Close()
	checkPageHeaders(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("consent answer status %d, want 303", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	if q.Get("state") != "st-123" || q.Get("iss") != e.issuer || len(q.Get("code")) < 43 {
		t.Fatalf("redirect %s lacks code, state or iss", loc)
	}
	stored := e.store.AuthCode(hashSecret(q.Get("code")))
	if stored == nil || stored.Subject != testUser || stored.Scope != "mcp:read mcp:write" ||
		stored.RedirectURI != cursorRedirect || stored.Resource != testResource {
		t.Fatalf("stored code %+v", stored)
	}

	tresp, tok := e.token(url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"code_verifier": {verifier}, "client_id": {client}, "redirect_uri": {cursorRedirect},
		"resource": {testResource},
	}, "", "")
	if tresp.StatusCode != http.StatusOK {
		t.Fatalf("token status %d: %v", tresp.StatusCode, tok)
	}
	checkTokenHeaders(t, tresp)
	if tok["token_type"] != "Bearer" || tok["scope"] != "mcp:read mcp:write" ||
		tok["refresh_token"] == nil || tok["expires_in"] != float64(3600) {
		t.Errorf("token answer %v", tok)
	}
	claims, reason, err := e.tokens.Verify(tok["access_token"].(string), time.Now())
	if err != nil {
		t.Fatalf("Verify: %v (%s)", err, reason)
	}
	want := authz.AccessClaims{Issuer: e.issuer, Subject: testUser, Audience: testResource,
		ClientID: client, Scope: "mcp:read mcp:write", GrantID: stored.GrantID}
	got := authz.AccessClaims{Issuer: claims.Issuer, Subject: claims.Subject,
		Audience: claims.Audience, ClientID: claims.ClientID, Scope: claims.Scope,
		GrantID: claims.GrantID}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}

	// The same browser comes back: logged in, consent remembered, no page.
	_, challenge2 := pkce()
	params2 := authParams(client, cursorRedirect, challenge2)
	params2.Set("scope", "mcp:write")
	resp = b.get(e.issuer + "/authorize?" + params2.Encode())
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound ||
		!strings.Contains(loc, "code=") {
		t.Errorf("returning user: status %d Location %q, want an immediate code",
			resp.StatusCode, loc)
	}
	// prompt=consent shows the consent page again.
	params2.Set("prompt", "consent")
	resp = b.get(e.issuer + "/authorize?" + params2.Encode())
	if page := readBody(t, resp); !strings.Contains(page, `value="allow"`) {
		t.Errorf("prompt=consent: status %d:\n%s", resp.StatusCode, page)
	}
}

func TestConsentRememberedAfterLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	_, challenge := pkce()
	e.authorize(authParams(client, webRedirect, challenge))

	// A new browser must log in, but is not asked again for the same scope.
	b := e.browser()
	resp := b.get(e.issuer + "/authorize?" + authParams(client, webRedirect, challenge).Encode())
	action, f := parseForm(t, e.issuer, readBody(t, resp))
	f.Set("username", testUser)
	f.Set("password", testPassword)
	resp = b.post(action, f)
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther ||
		!strings.Contains(loc, "code=") {
		t.Errorf("status %d Location %q, want a code straight after login",
			resp.StatusCode, loc)
	}
	// A wider scope asks again.
	q := authParams(client, webRedirect, challenge)
	q.Set("scope", "mcp:read mcp:write")
	resp = b.get(e.issuer + "/authorize?" + q.Encode())
	if page := readBody(t, resp); !strings.Contains(page, `value="allow"`) {
		t.Errorf("wider scope did not ask for consent: %d", resp.StatusCode)
	}
}

func TestConsentDenied(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	_, challenge := pkce()
	b := e.browser()
	action, f := e.loginToConsent(b, authParams(client, webRedirect, challenge))
	f.Set("consent", "deny")
	resp := b.post(action, f)
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "st-123" {
		t.Errorf("deny redirected to %s", loc)
	}
	if e.store.Consent(testUser, client) != nil {
		t.Errorf("consent stored after deny")
	}
}

func TestAuthorizeFormProtection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	_, challenge := pkce()
	tests := []struct {
		name       string
		modify     func(f url.Values) url.Values
		otherUA    bool
		wantStatus int
	}{
		{"missing csrf", func(f url.Values) url.Values { f.Del("csrf"); return f }, false, 403},
		{"wrong csrf", func(f url.Values) url.Values { f.Set("csrf", "x"); return f }, false, 403},
		{"other browser", func(f url.Values) url.Values { return f }, true, 403},
		{"unknown client", func(f url.Values) url.Values {
			f.Set("client_id", "nope")
			return f
		}, false, 400},
		{"unregistered redirect", func(f url.Values) url.Values {
			f.Set("redirect_uri", "https://attacker.example/cb")
			return f
		}, false, 400},
		{"unknown step", func(f url.Values) url.Values { f.Set("step", "x"); return f }, false, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			b := e.browser()
			resp := b.get(e.issuer + "/authorize?" +
				authParams(client, webRedirect, challenge).Encode())
			action, f := parseForm(t, e.issuer, readBody(t, resp))
			f.Set("username", testUser)
			f.Set("password", testPassword)
			if tt.otherUA {
				b = e.browser()
			}
			resp = b.post(action, tt.modify(f))
			page := readBody(t, resp)
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Location") != "" {
				t.Fatalf("status %d Location %q, want %d:\n%s", resp.StatusCode,
					resp.Header.Get("Location"), tt.wantStatus, page)
			}
			if strings.Contains(page, `value="allow"`) {
				t.Errorf("refused form still led to consent")
			}
		})
	}
}

func TestLoginFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	_, challenge := pkce()
	b := e.browser()
	resp := b.get(e.issuer + "/authorize?" + authParams(client, webRedirect, challenge).Encode())
	action, f := parseForm(t, e.issuer, readBody(t, resp))
	// Fewer failures per name than lock it (the lockout has its own tests).
	for i := range e.srv.cfg.RateLimits.Lockout.Failures {
		name := map[bool]string{true: testUser, false: "mallory"}[i%2 == 0]
		f.Set("username", name)
		f.Set("password", "wrong")
		resp = b.post(action, f)
		page := readBody(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Wrong user name") ||
			!strings.Contains(page, `value="`+name+`"`) || strings.Contains(page, "wrong") {
			t.Fatalf("attempt %d: status %d:\n%s", i, resp.StatusCode, page)
		}
		action, f = parseForm(t, e.issuer, page)
	}
	f.Set("username", testUser)
	f.Set("password", testPassword)
	resp = b.post(action, f)
	if page := readBody(t, resp); resp.StatusCode != http.StatusOK ||
		!strings.Contains(page, `value="allow"`) {
		t.Errorf("correct password after failures: status %d:\n%s", resp.StatusCode, page)
	}
}

func TestSessionCookie(t *testing.T) {
	t.Parallel()
	tests := []struct {
		issuer     string
		wantName   string
		wantSecure bool
	}{
		{"https://auth.example", "__Host-mcp-authz-session", true},
		{"http://localhost:9000", "mcp-authz-session", false},
	}
	for _, tt := range tests {
		t.Run(tt.issuer, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			cfg := e.srv.cfg
			cfg.Issuer = tt.issuer
			srv, err := NewServer(cfg, e.store, e.srv.keys, e.srv.tokens, discard())
			if err != nil {
				t.Fatal(err)
			}
			e.srv = srv
			client := e.publicClient(webRedirect)
			_, challenge := pkce()
			resp := e.do(http.MethodGet,
				"/authorize?"+authParams(client, webRedirect, challenge).Encode(), nil, nil)
			cs := resp.Cookies()
			if len(cs) != 1 {
				t.Fatalf("cookies %v", cs)
			}
			c := cs[0]
			if c.Name != tt.wantName || c.Secure != tt.wantSecure || !c.HttpOnly ||
				c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
				t.Errorf("cookie %+v", c)
			}
		})
	}
}

func checkPageHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	h := resp.Header
	if h.Get("X-Frame-Options") != "DENY" ||
		!strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
		h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "same-origin" {
		t.Errorf("page headers %v", h)
	}
	if h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS header on an authorization page")
	}
}

func checkTokenHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
		t.Errorf("token answer headers %v", resp.Header)
	}
}

// TestConsentCoversOneResource gives consent for one resource and checks
// that the same client asking for another resource is asked again.
func TestConsentCoversOneResource(t *testing.T) {
	t.Parallel()
	const other = "https://other.example.com/mcp"
	e := newEnv(t, withResources(
		authz.Resource{URL: testResource, Scopes: []string{"mcp:read"}},
		authz.Resource{URL: other, Scopes: []string{"mcp:read"}},
	))
	client := e.publicClient(webRedirect)
	_, challenge := pkce()
	q := authParams(client, webRedirect, challenge)
	q.Set("resource", testResource)
	e.authorize(q)
	if c := e.store.Consent(testUser, client); c == nil || c.Resource != testResource {
		t.Fatalf("stored consent %+v, want one for %s", c, testResource)
	}

	b := e.browser()
	login := func(q url.Values) *http.Response {
		resp := b.get(e.issuer + "/authorize?" + q.Encode())
		action, f := parseForm(t, e.issuer, readBody(t, resp))
		f.Set("username", testUser)
		f.Set("password", testPassword)
		return b.post(action, f)
	}
	q.Set("resource", other)
	resp := login(q)
	if page := readBody(t, resp); !strings.Contains(page, `value="allow"`) ||
		!strings.Contains(page, "other.example.com") {
		t.Errorf("another resource did not ask for consent naming it: %d\n%s",
			resp.StatusCode, page)
	}
	// The first resource is still covered in the same session.
	q.Set("resource", testResource)
	resp = b.get(e.issuer + "/authorize?" + q.Encode())
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); !strings.Contains(loc, "code=") {
		t.Errorf("consented resource: status %d Location %q, want a code",
			resp.StatusCode, loc)
	}
}
