package oauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
)

// decideWith asks the production ext_authz decision about a request to the
// test resource carrying token, through a Decider on the env's registry. The
// Decider caches verified tokens, so a test that calls it before and after a
// revocation shows the revocation is not hidden by the cache.
func (e *testEnv) decideWith(d *authz.Decider, token string) authz.Reason {
	e.t.Helper()
	return d.Check(e.t.Context(), &authz.Request{
		DecisionID: "t", Method: "POST", Scheme: "http", Host: "localhost:8080",
		Path: "/mcp", Authorization: []string{"Bearer " + token},
	}).Reason
}

// decider returns a Decider wired as in production, with the server as
// its client lookup.
func (e *testEnv) decider() *authz.Decider {
	d := authz.NewDecider(e.srv.cfg.Config, e.tokens, e.store, discard())
	d.SetClientLookup(e.srv)
	return d
}

func (e *testEnv) postForm(path string, f url.Values) *http.Response {
	e.t.Helper()
	return e.do(http.MethodPost, path, strings.NewReader(f.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
}

// TestRevocationReachesDecision checks that every way a token dies is seen
// by the next ext_authz decision, even with the token already cached.
func TestRevocationReachesDecision(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name string
		// kill ends the tokens of a fresh grant of the registered client
		// reg and returns the access token that must now be refused.
		kill       func(e *testEnv, reg, tok map[string]any) string
		wantReason authz.Reason
	}{
		{"access token revoked", func(e *testEnv, reg, tok map[string]any) string {
			client := reg["client_id"].(string)
			at := tok["access_token"].(string)
			e.postForm("/revoke", url.Values{"client_id": {client}, "token": {at}}).Body.Close()
			return at
		}, authz.ReasonRevokedToken},
		{"refresh token revoked", func(e *testEnv, reg, tok map[string]any) string {
			client := reg["client_id"].(string)
			e.postForm("/revoke", url.Values{"client_id": {client},
				"token": {tok["refresh_token"].(string)}}).Body.Close()
			return tok["access_token"].(string)
		}, authz.ReasonRevokedToken},
		{"rotated refresh token reused", func(e *testEnv, reg, tok map[string]any) string {
			client := reg["client_id"].(string)
			rt := tok["refresh_token"].(string)
			resp, next := e.token(refreshForm(client, rt), "", "")
			if resp.StatusCode != http.StatusOK {
				e.t.Fatalf("refresh: %d %v", resp.StatusCode, next)
			}
			if r := e.decideWith(e.decider(), next["access_token"].(string)); r != authz.ReasonOK {
				e.t.Fatalf("rotated access token: %s", r)
			}
			e.token(refreshForm(client, rt), "", "") // reuse
			return next["access_token"].(string)
		}, authz.ReasonRevokedToken},
		{"client deleted (RFC 7592)", func(e *testEnv, reg, tok map[string]any) string {
			client := reg["client_id"].(string)
			if st := e.manage(http.MethodDelete, reg, nil).StatusCode; st != 204 {
				e.t.Fatalf("DELETE %s: %d", client, st)
			}
			return tok["access_token"].(string)
		}, authz.ReasonUnknownClient},
		{"consent withdrawn", func(e *testEnv, reg, tok map[string]any) string {
			client := reg["client_id"].(string)
			if _, err := e.srv.withdrawConsent(t.Context(), testUser, client); err != nil {
				e.t.Fatal(err)
			}
			return tok["access_token"].(string)
		}, authz.ReasonRevokedToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			d := e.decider()
			reg := e.register(publicMeta(webRedirect))
			tok := e.codeTokens(reg["client_id"].(string), webRedirect)
			if r := e.decideWith(d, tok["access_token"].(string)); r != authz.ReasonOK {
				t.Fatalf("fresh token: %s", r)
			}
			at := tt.kill(e, reg, tok)
			if r := e.decideWith(d, at); r != tt.wantReason {
				t.Errorf("after %s: decision %s, want %s", tt.name, r, tt.wantReason)
			}
		})
	}
}

// TestCodeReplayReachesDecision checks that replaying a code revokes the
// access token its first exchange issued.
func TestCodeReplayReachesDecision(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.decider()
	client := e.publicClient(webRedirect)
	code, verifier := e.codeFor(client, webRedirect)
	resp, tok := e.token(codeForm(client, code, verifier, webRedirect), "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("exchange: %d %v", resp.StatusCode, tok)
	}
	at := tok["access_token"].(string)
	if r := e.decideWith(d, at); r != authz.ReasonOK {
		t.Fatalf("fresh token: %s", r)
	}
	if resp, got := e.token(codeForm(client, code, verifier, webRedirect), "", ""); resp.
		StatusCode != http.StatusBadRequest || got["error"] != "invalid_grant" {
		t.Fatalf("replay: %d %v", resp.StatusCode, got)
	}
	if r := e.decideWith(d, at); r != authz.ReasonRevokedToken {
		t.Errorf("access token after code replay: %s, want %s", r, authz.ReasonRevokedToken)
	}
}

// TestConfidentialRevokeIntrospect checks that revocation and
// introspection authenticate a confidential client like the token endpoint.
func TestConfidentialRevokeIntrospect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := e.register(map[string]any{
		"redirect_uris": []string{webRedirect}, "token_endpoint_auth_method": "client_secret_post",
		"grant_types": []string{"authorization_code", "refresh_token"},
	})
	id, secret := reg["client_id"].(string), reg["client_secret"].(string)
	code, verifier := e.codeFor(id, webRedirect)
	f := codeForm(id, code, verifier, webRedirect)
	f.Set("client_secret", secret)
	resp, tok := e.token(f, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("exchange: %d %v", resp.StatusCode, tok)
	}
	rt := tok["refresh_token"].(string)
	for _, path := range []string{"/revoke", "/introspect"} {
		t.Run(path, func(t *testing.T) {
			e := e.with(t)
			for _, tc := range []struct {
				name   string
				form   url.Values
				status int
			}{
				{"no secret", url.Values{"client_id": {id}, "token": {rt}}, 401},
				{"wrong secret", url.Values{"client_id": {id}, "client_secret": {"x"},
					"token": {rt}}, 401},
			} {
				resp := e.postForm(path, tc.form)
				got := decodeJSON(t, resp)
				if resp.StatusCode != tc.status || got["error"] != "invalid_client" {
					t.Errorf("%s: %d %v, want %d invalid_client", tc.name, resp.StatusCode, got,
						tc.status)
				}
			}
		})
	}
	if !e.store.RefreshToken(hashSecret(rt)).RevokedAt.IsZero() {
		t.Errorf("unauthenticated revocation revoked the token")
	}
	resp = e.postForm("/introspect", url.Values{"client_id": {id}, "client_secret": {secret},
		"token": {rt}})
	if got := decodeJSON(t, resp); got["active"] != true {
		t.Errorf("introspection with the secret: %v", got)
	}
}

// TestIssOnEveryAuthorizationResponse checks RFC 9207: every response
// redirected to the client, success or error, carries iss, also when the
// issuer has a path.
func TestIssOnEveryAuthorizationResponse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withIssuerPath("/tenant"))
	client := e.publicClient(webRedirect)
	_, challenge := pkce()
	redirected := func(resp *http.Response) url.Values {
		t.Helper()
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || !strings.HasPrefix(loc.String(), webRedirect+"?") {
			t.Fatalf("not redirected to the client: %d %q", resp.StatusCode, loc)
		}
		return loc.Query()
	}
	tests := []struct {
		name      string
		respond   func(b *browser) *http.Response
		wantError string
	}{
		{"consent denied", func(b *browser) *http.Response {
			action, f := e.loginToConsent(b, authParams(client, webRedirect, challenge))
			f.Set("consent", "deny")
			return b.post(action, f)
		}, "access_denied"},
		{"consent allowed", func(b *browser) *http.Response {
			action, f := e.loginToConsent(b, authParams(client, webRedirect, challenge))
			f.Set("consent", "allow")
			return b.post(action, f)
		}, ""},
		{"login required", func(b *browser) *http.Response {
			q := authParams(client, webRedirect, challenge)
			q.Set("prompt", "none")
			return b.get(e.issuer + "/authorize?" + q.Encode())
		}, "login_required"},
		{"invalid request", func(b *browser) *http.Response {
			q := authParams(client, webRedirect, challenge)
			q.Del("code_challenge")
			return b.get(e.issuer + "/authorize?" + q.Encode())
		}, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			q := redirected(tt.respond(e.browser()))
			if q.Get("iss") != e.issuer || q.Get("error") != tt.wantError ||
				q.Get("state") != "st-123" {
				t.Errorf("response %v, want iss %s, error %q and the state", q, e.issuer,
					tt.wantError)
			}
		})
	}
}

// TestWithdrawalWithoutRefreshTokens withdraws the consent of a client that
// never had a refresh token: its access tokens must die too, while a token
// issued after the withdrawal (a new consent) is not affected.
func TestWithdrawalWithoutRefreshTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.decider()
	meta := publicMeta(webRedirect)
	meta["grant_types"] = []string{"authorization_code"}
	client := e.register(meta)["client_id"].(string)
	tok := e.codeTokens(client, webRedirect)
	if tok["refresh_token"] != nil {
		t.Fatalf("a client without the refresh_token grant got a refresh token")
	}
	at := tok["access_token"].(string)
	if r := e.decideWith(d, at); r != authz.ReasonOK {
		t.Fatalf("fresh token: %s", r)
	}

	if _, err := e.srv.withdrawConsent(t.Context(), testUser, client); err != nil {
		t.Fatal(err)
	}
	if r := e.decideWith(d, at); r != authz.ReasonRevokedToken {
		t.Errorf("access token after withdrawal: %s, want %s", r, authz.ReasonRevokedToken)
	}

	later, _, err := e.tokens.Mint(authz.AccessClaims{
		Subject: testUser, ClientID: client, Audience: testResource, Scope: "mcp:read",
		IssuedAt: time.Now().Add(2 * time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.decideWith(d, later); r != authz.ReasonOK {
		t.Errorf("token issued after the withdrawal: %s, want ok", r)
	}
}
