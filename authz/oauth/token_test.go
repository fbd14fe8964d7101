package oauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/registry"
)

// codeFor runs the browser flow for client and returns a fresh code and its
// verifier.
func (e *testEnv) codeFor(client, redirect string) (code, verifier string) {
	e.t.Helper()
	verifier, challenge := pkce()
	return e.authorize(authParams(client, redirect, challenge)), verifier
}

// laterServer returns a second server on e's registry whose clock is ahead
// by d.
func (e *testEnv) laterServer(d time.Duration) *Server {
	e.t.Helper()
	srv, err := NewServer(e.srv.cfg, e.store, e.srv.keys, e.srv.tokens, discard())
	if err != nil {
		e.t.Fatal(err)
	}
	srv.now = func() time.Time { return time.Now().Add(d) }
	return srv
}

func codeForm(client, code, verifier, redirect string) url.Values {
	return url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
		"client_id": {client}, "redirect_uri": {redirect},
	}
}

func TestTokenCodeErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	other := e.publicClient(webRedirect)
	tests := []struct {
		name       string
		modify     func(f url.Values)
		wantStatus int
		wantError  string
	}{
		{"wrong verifier", func(f url.Values) {
			v, _ := pkce()
			f.Set("code_verifier", v)
		}, 400, "invalid_grant"},
		{"short verifier", func(f url.Values) { f.Set("code_verifier", "abc") },
			400, "invalid_grant"},
		{"verifier with bad characters", func(f url.Values) {
			f.Set("code_verifier", strings.Repeat("a+", 30))
		}, 400, "invalid_grant"},
		{"missing verifier", func(f url.Values) { f.Del("code_verifier") },
			400, "invalid_request"},
		{"unknown code", func(f url.Values) { f.Set("code", "nope") }, 400, "invalid_grant"},
		{"missing code", func(f url.Values) { f.Del("code") }, 400, "invalid_request"},
		{"other client", func(f url.Values) { f.Set("client_id", other) }, 400, "invalid_grant"},
		{"other redirect", func(f url.Values) {
			f.Set("redirect_uri", "https://cursor.com/oauth/other")
		}, 400, "invalid_grant"},
		{"missing redirect", func(f url.Values) { f.Del("redirect_uri") }, 400, "invalid_grant"},
		{"other resource", func(f url.Values) {
			f.Set("resource", "http://localhost:8080/other")
		}, 400, "invalid_target"},
		{"unsupported grant", func(f url.Values) { f.Set("grant_type", "password") },
			400, "unsupported_grant_type"},
		{"missing grant", func(f url.Values) { f.Del("grant_type") }, 400, "invalid_request"},
		{"repeated parameter", func(f url.Values) { f.Add("code", "x") }, 400, "invalid_request"},
		{"unknown client", func(f url.Values) { f.Set("client_id", "gone") },
			401, "invalid_client"},
		{"no client", func(f url.Values) { f.Del("client_id") }, 401, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			code, verifier := e.codeFor(client, webRedirect)
			f := codeForm(client, code, verifier, webRedirect)
			tt.modify(f)
			resp, got := e.token(f, "", "")
			checkTokenHeaders(t, resp)
			if resp.StatusCode != tt.wantStatus || got["error"] != tt.wantError {
				t.Fatalf("answer %d %v, want %d %s", resp.StatusCode, got, tt.wantStatus,
					tt.wantError)
			}
			// A failed attempt does not spend the code.
			if tt.wantStatus == 400 && tt.name != "other client" {
				resp, got = e.token(codeForm(client, code, verifier, webRedirect), "", "")
				if resp.StatusCode != http.StatusOK {
					t.Errorf("code unusable after a failed attempt: %d %v", resp.StatusCode, got)
				}
			}
		})
	}
}

func TestTokenWrongContentType(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	resp := e.do(http.MethodPost, "/token",
		strings.NewReader(`{"grant_type":"authorization_code","client_id":"`+client+`"}`),
		map[string]string{"Content-Type": "application/json"})
	got := decodeJSON(t, resp)
	if resp.StatusCode != http.StatusBadRequest || got["error"] != "invalid_request" {
		t.Errorf("answer %d %v", resp.StatusCode, got)
	}
	checkTokenHeaders(t, resp)
}

func TestCodeExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	code, verifier := e.codeFor(client, webRedirect)
	e.srv = e.laterServer(DefaultCodeTTL + time.Second)
	resp := e.do(http.MethodPost, "/token",
		strings.NewReader(codeForm(client, code, verifier, webRedirect).Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if got := decodeJSON(t, resp); resp.StatusCode != 400 || got["error"] != "invalid_grant" {
		t.Errorf("answer %d %v, want invalid_grant", resp.StatusCode, got)
	}
}

func TestCodeReuseRevokesGrant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	code, verifier := e.codeFor(client, webRedirect)
	resp, first := e.token(codeForm(client, code, verifier, webRedirect), "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first use: %d %v", resp.StatusCode, first)
	}
	resp, got := e.token(codeForm(client, code, verifier, webRedirect), "", "")
	if resp.StatusCode != http.StatusBadRequest || got["error"] != "invalid_grant" {
		t.Fatalf("second use: %d %v, want invalid_grant", resp.StatusCode, got)
	}
	grant := e.store.AuthCode(hashSecret(code)).GrantID
	if !e.store.Revoked("grant:" + grant) {
		t.Errorf("grant %s not revoked", grant)
	}
	resp, got = e.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {client},
		"refresh_token": {first["refresh_token"].(string)}}, "", "")
	if resp.StatusCode != http.StatusBadRequest || got["error"] != "invalid_grant" {
		t.Errorf("refresh after code replay: %d %v, want invalid_grant", resp.StatusCode, got)
	}
}

func refreshForm(client, rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "client_id": {client},
		"refresh_token": {rt}}
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	tok := e.codeTokens(client, webRedirect)
	rt1 := tok["refresh_token"].(string)

	resp, tok2 := e.token(refreshForm(client, rt1), "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %d %v", resp.StatusCode, tok2)
	}
	checkTokenHeaders(t, resp)
	rt2 := tok2["refresh_token"].(string)
	if rt2 == "" || rt2 == rt1 || tok2["scope"] != "mcp:read" {
		t.Fatalf("refresh answer %v", tok2)
	}
	if old := e.store.RefreshToken(hashSecret(rt1)); old == nil || old.RotatedAt.IsZero() {
		t.Errorf("old refresh token not marked rotated: %+v", old)
	}
	if e.store.RefreshToken(hashSecret(rt2)).GrantID != e.store.RefreshToken(hashSecret(rt1)).GrantID {
		t.Errorf("rotated token left the grant")
	}

	// Reusing the rotated token revokes the family, rt2 included.
	resp, got := e.token(refreshForm(client, rt1), "", "")
	if resp.StatusCode != http.StatusBadRequest || got["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v", resp.StatusCode, got)
	}
	resp, got = e.token(refreshForm(client, rt2), "", "")
	if resp.StatusCode != http.StatusBadRequest || got["error"] != "invalid_grant" {
		t.Errorf("newest token after reuse: %d %v, want invalid_grant", resp.StatusCode, got)
	}
	if g := e.store.RefreshToken(hashSecret(rt2)).GrantID; !e.store.Revoked("grant:" + g) {
		t.Errorf("grant %s not revoked", g)
	}
}

func TestRefreshScope(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	verifier, challenge := pkce()
	q := authParams(client, webRedirect, challenge)
	q.Set("scope", "mcp:read mcp:write")
	code := e.authorize(q)
	_, tok := e.token(codeForm(client, code, verifier, webRedirect), "", "")
	rt := tok["refresh_token"].(string)

	f := refreshForm(client, rt)
	f.Set("scope", "mcp:read admin")
	if resp, got := e.token(f, "", ""); got["error"] != "invalid_scope" {
		t.Fatalf("widening: %d %v, want invalid_scope", resp.StatusCode, got)
	}
	f.Set("scope", "mcp:write")
	resp, got := e.token(f, "", "")
	if resp.StatusCode != http.StatusOK || got["scope"] != "mcp:write" {
		t.Fatalf("narrowing: %d %v", resp.StatusCode, got)
	}
	// The grant keeps its scope: the next refresh may ask for all of it again.
	resp, got = e.token(refreshForm(client, got["refresh_token"].(string)), "", "")
	if resp.StatusCode != http.StatusOK || got["scope"] != "mcp:read mcp:write" {
		t.Errorf("after narrowing: %d %v", resp.StatusCode, got)
	}
}

func TestRefreshErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	other := e.publicClient(webRedirect)
	noRefresh := e.register(map[string]any{
		"redirect_uris": []string{webRedirect}, "token_endpoint_auth_method": "none",
	})["client_id"].(string)
	tests := []struct {
		name      string
		form      func(rt string) url.Values
		wantError string
	}{
		{"other client", func(rt string) url.Values { return refreshForm(other, rt) },
			"invalid_grant"},
		{"unknown token", func(string) url.Values { return refreshForm(client, "nope") },
			"invalid_grant"},
		{"missing token", func(string) url.Values { return refreshForm(client, "") },
			"invalid_request"},
		{"client without refresh grant", func(rt string) url.Values {
			return refreshForm(noRefresh, rt)
		}, "unauthorized_client"},
		{"other resource", func(rt string) url.Values {
			f := refreshForm(client, rt)
			f.Set("resource", "https://elsewhere.example/mcp")
			return f
		}, "invalid_target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			rt := e.codeTokens(client, webRedirect)["refresh_token"].(string)
			resp, got := e.token(tt.form(rt), "", "")
			if resp.StatusCode != http.StatusBadRequest || got["error"] != tt.wantError {
				t.Fatalf("answer %d %v, want %s", resp.StatusCode, got, tt.wantError)
			}
			// The rightful client can still refresh.
			if resp, got := e.token(refreshForm(client, rt), "", ""); resp.StatusCode != 200 {
				t.Errorf("owner's refresh after refusal: %d %v", resp.StatusCode, got)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		rt := e.codeTokens(client, webRedirect)["refresh_token"].(string)
		env := e.with(t)
		env.srv = e.laterServer(DefaultRefreshTTL + time.Hour)
		rec := env.do(http.MethodPost, "/token", strings.NewReader(refreshForm(client,
			rt).Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if got := decodeJSON(t, rec); got["error"] != "invalid_grant" {
			t.Errorf("expired refresh: %v", got)
		}
	})
	t.Run("no refresh token for clients without the grant", func(t *testing.T) {
		got := e.codeTokens(noRefresh, webRedirect)
		if _, ok := got["refresh_token"]; ok {
			t.Errorf("refresh token issued to a client without the grant: %v", got)
		}
	})
}

func TestConfidentialClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := func(method string) (string, string) {
		c := e.register(map[string]any{
			"redirect_uris":              []string{"https://claude.ai/api/mcp/auth_callback"},
			"token_endpoint_auth_method": method,
			"grant_types":                []string{"authorization_code", "refresh_token"},
		})
		return c["client_id"].(string), c["client_secret"].(string)
	}
	postID, postSecret := reg("client_secret_post")
	basicID, basicSecret := reg("client_secret_basic")
	redirect := "https://claude.ai/api/mcp/auth_callback"
	tests := []struct {
		name                 string
		client               string
		formSecret           string
		basicUser, basicPass string
		wantStatus           int
		wantBasicChallenge   bool
	}{
		{"post ok", postID, postSecret, "", "", 200, false},
		{"post wrong secret", postID, "wrong", "", "", 401, false},
		{"post without secret", postID, "", "", "", 401, false},
		{"post client using basic", postID, "", postID, postSecret, 401, true},
		{"basic ok", basicID, "", basicID, basicSecret, 200, false},
		{"basic wrong secret", basicID, "", basicID, "wrong", 401, true},
		{"basic client using post", basicID, basicSecret, "", "", 401, false},
		{"basic unknown client", basicID, "", "nobody", basicSecret, 401, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			client := tt.client
			code, verifier := e.codeFor(client, redirect)
			f := codeForm(client, code, verifier, redirect)
			if tt.formSecret != "" {
				f.Set("client_secret", tt.formSecret)
			}
			if tt.basicUser != "" {
				f.Del("client_id")
			}
			resp, got := e.token(f, tt.basicUser, tt.basicPass)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tt.wantStatus, got)
			}
			if tt.wantStatus == 401 && got["error"] != "invalid_client" {
				t.Errorf("error %v, want invalid_client", got)
			}
			hasChallenge := strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic")
			if hasChallenge != tt.wantBasicChallenge {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestRevokedClientAtToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	tok := e.codeTokens(client, webRedirect)
	err := e.store.Update(t.Context(), func(tx *registry.Txn) error {
		c := tx.Client(client).Copy()
		c.RevokedAt = time.Now()
		return tx.PutClient(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, got := e.token(refreshForm(client, tok["refresh_token"].(string)), "", "")
	if resp.StatusCode != http.StatusUnauthorized || got["error"] != "invalid_client" {
		t.Errorf("revoked client: %d %v, want 401 invalid_client", resp.StatusCode, got)
	}
}

func TestRevokeAndIntrospect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	other := e.publicClient(webRedirect)
	revoke := func(f url.Values) int {
		t.Helper()
		rec := e.do(http.MethodPost, "/revoke", strings.NewReader(f.Encode()),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		readBody(t, rec)
		return rec.StatusCode
	}
	introspect := func(c, token string) bool {
		t.Helper()
		resp := e.do(http.MethodPost, "/introspect", strings.NewReader(url.Values{
			"client_id": {c}, "token": {token}}.Encode()),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		return decodeJSON(t, resp)["active"] == true
	}

	tok := e.codeTokens(client, webRedirect)
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)
	if !introspect(client, at) || !introspect(client, rt) {
		t.Fatalf("fresh tokens inactive")
	}
	if introspect(other, at) || introspect(other, rt) {
		t.Errorf("another client sees the tokens as active")
	}
	// Another client's revocation is ignored (and answered 200).
	if st := revoke(url.Values{"client_id": {other}, "token": {rt}}); st != 200 {
		t.Errorf("revoke by another client: %d", st)
	}
	if !introspect(client, rt) {
		t.Fatalf("another client revoked the token")
	}
	// Revoking the access token revokes its jti only.
	if st := revoke(url.Values{"client_id": {client}, "token": {at}}); st != 200 {
		t.Fatalf("revoke access token: %d", st)
	}
	if introspect(client, at) || !introspect(client, rt) {
		t.Errorf("after access token revocation: at %v rt %v", introspect(client, at),
			introspect(client, rt))
	}
	// Revoking the refresh token revokes the grant.
	tok = e.codeTokens(client, webRedirect)
	at, rt = tok["access_token"].(string), tok["refresh_token"].(string)
	if st := revoke(url.Values{"client_id": {client}, "token": {rt},
		"token_type_hint": {"refresh_token"}}); st != 200 {
		t.Fatalf("revoke refresh token: %d", st)
	}
	if introspect(client, at) || introspect(client, rt) {
		t.Errorf("grant still active after refresh token revocation")
	}
	if resp, got := e.token(refreshForm(client, rt), "", ""); got["error"] != "invalid_grant" {
		t.Errorf("refresh after revocation: %d %v", resp.StatusCode, got)
	}
	// Unknown tokens are fine; unknown clients are not.
	if st := revoke(url.Values{"client_id": {client}, "token": {"x"}}); st != 200 {
		t.Errorf("unknown token: %d", st)
	}
	if st := revoke(url.Values{"client_id": {"nobody"}, "token": {"x"}}); st != 401 {
		t.Errorf("unknown client: %d", st)
	}
}

func TestStoreErrorMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err        error
		wantStatus int
		wantCode   string
	}{
		{registry.ErrUnavailable, 503, "temporarily_unavailable"},
		{registry.ErrClosed, 500, "server_error"},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			got := storeError(wrap(tt.err))
			if got.Status != tt.wantStatus || got.Code != tt.wantCode {
				t.Errorf("storeError = %+v, want %d %s", got, tt.wantStatus, tt.wantCode)
			}
		})
	}
}

type wrapped struct{ err error }

func (w wrapped) Error() string { return "appending record: " + w.err.Error() }
func (w wrapped) Unwrap() error { return w.err }

func wrap(err error) error { return wrapped{err} }
