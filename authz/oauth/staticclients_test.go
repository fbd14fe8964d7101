package oauth

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/registry"
)

const staticSecret = "configured-secret-value"

var staticHash = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(staticSecret), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}()

func withStatic(cs ...StaticClient) envOption {
	return func(c *Config) { c.StaticClients = cs }
}

// TestStaticClientFlow runs the whole flow for a configured public client
// and shows that it never reaches the registry, that its grant survives a
// restart with the same configuration, and that removing it from the
// configuration ends it.
func TestStaticClientFlow(t *testing.T) {
	t.Parallel()
	sc := StaticClient{ID: "static-public", Name: "Static App",
		RedirectURIs: []string{"http://127.0.0.1/callback"}}
	e := newEnv(t, withStatic(sc))
	got := e.codeTokens(sc.ID, "http://127.0.0.1:4567/callback")
	if e.store.Client(sc.ID) != nil {
		t.Fatal("the configured client was written to the registry")
	}
	rt := e.store.RefreshToken(hashSecret(got["refresh_token"].(string)))
	if rt == nil || rt.ClientID != sc.ID {
		t.Fatalf("refresh token record %+v", rt)
	}
	if r := e.decide(got["access_token"].(string)); r != authz.ReasonOK {
		t.Errorf("decision %s, want ok", r)
	}

	refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {sc.ID},
		"refresh_token": {got["refresh_token"].(string)}}
	restarted, err := NewServer(e.srv.cfg, e.store, e.srv.keys, e.tokens, discard())
	if err != nil {
		t.Fatal(err)
	}
	status, body := tokenForm(t, restarted, refresh, "", "")
	if status != http.StatusOK {
		t.Fatalf("refresh after restart: %d %v", status, body)
	}

	cfg := e.srv.cfg
	cfg.StaticClients = nil
	removed, err := NewServer(cfg, e.store, e.srv.keys, e.tokens, discard())
	if err != nil {
		t.Fatal(err)
	}
	refresh.Set("refresh_token", body["refresh_token"].(string))
	status, body = tokenForm(t, removed, refresh, "", "")
	if status != http.StatusUnauthorized || body["error"] != errInvalidClient {
		t.Errorf("refresh after removal: %d %v, want 401 invalid_client", status, body)
	}
	if known, _ := removed.ClientKnown(sc.ID); known {
		t.Error("a removed configured client is still known")
	}
}

func TestStaticClientAuthentication(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(staticSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	redirect := []string{"https://app.example.com/cb"}
	e := newEnv(t, withStatic(
		StaticClient{ID: "both", SecretBcrypt: staticHash, RedirectURIs: redirect},
		StaticClient{ID: "post-only", SecretBcrypt: staticHash, RedirectURIs: redirect,
			TokenEndpointAuthMethod: authSecretPost},
		StaticClient{ID: "from-file", SecretFile: secretFile, RedirectURIs: redirect},
		StaticClient{ID: "public", RedirectURIs: redirect},
	))
	// An authenticated client gets invalid_grant for a made-up refresh
	// token; a refused one gets 401 invalid_client.
	tests := []struct {
		name, id, how, secret string
		want                  int
	}{
		{"basic", "both", "basic", staticSecret, http.StatusBadRequest},
		{"post", "both", "post", staticSecret, http.StatusBadRequest},
		{"basic again (remembered)", "both", "basic", staticSecret, http.StatusBadRequest},
		{"wrong secret", "both", "basic", staticSecret + "x", http.StatusUnauthorized},
		{"no secret", "both", "none", "", http.StatusUnauthorized},
		{"post-only by post", "post-only", "post", staticSecret, http.StatusBadRequest},
		{"post-only by basic", "post-only", "basic", staticSecret, http.StatusUnauthorized},
		{"file secret", "from-file", "post", staticSecret, http.StatusBadRequest},
		{"file secret wrong", "from-file", "post", "nope", http.StatusUnauthorized},
		{"public", "public", "none", "", http.StatusBadRequest},
		{"public with a secret", "public", "post", "x", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"made-up"}}
			var user, pass string
			switch tt.how {
			case "basic":
				user, pass = tt.id, tt.secret
			case "post":
				form.Set("client_id", tt.id)
				form.Set("client_secret", tt.secret)
			default:
				form.Set("client_id", tt.id)
			}
			status, body := tokenForm(t, e.srv, form, user, pass)
			if status != tt.want {
				t.Errorf("status %d %v, want %d", status, body, tt.want)
			}
		})
	}
	if e.srv.clients.static["both"].verified.Load() == nil {
		t.Error("an accepted secret was not remembered")
	}
}

func TestStaticClientSecretFromEnvironment(t *testing.T) {
	t.Setenv("MCP_AUTHZ_TEST_CLIENT_SECRET", staticSecret)
	e := newEnv(t, withStatic(StaticClient{ID: "env", SecretEnv: "MCP_AUTHZ_TEST_CLIENT_SECRET",
		RedirectURIs: []string{"https://app.example.com/cb"}}))
	for secret, want := range map[string]int{
		staticSecret: http.StatusBadRequest, "wrong": http.StatusUnauthorized,
	} {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"made-up"},
			"client_id": {"env"}, "client_secret": {secret}}
		if status, body := tokenForm(t, e.srv, form, "", ""); status != want {
			t.Errorf("secret %q: status %d %v, want %d", secret, status, body, want)
		}
	}
}

func TestStaticClientScopes(t *testing.T) {
	t.Parallel()
	sc := StaticClient{ID: "limited", RedirectURIs: []string{"http://127.0.0.1/cb"},
		Scopes: []string{"mcp:read"}}
	e := newEnv(t, withStatic(sc))
	_, challenge := pkce()
	q := authParams(sc.ID, "http://127.0.0.1/cb", challenge)

	q.Set("scope", "mcp:read mcp:write")
	_, fatal, rerr := e.srv.parseAuthorize(t.Context(), q, DevUseAuthorize)
	if fatal != nil || rerr == nil || rerr.Code != errInvalidScope {
		t.Errorf("scope beyond the allowed: fatal %v, error %v; want invalid_scope", fatal, rerr)
	}
	q.Del("scope")
	req, fatal, rerr := e.srv.parseAuthorize(t.Context(), q, DevUseAuthorize)
	if fatal != nil || rerr != nil {
		t.Fatal(fatal, rerr)
	}
	if diff := cmp.Diff([]string{"mcp:read"}, req.scope); diff != "" {
		t.Errorf("default scope (-want +got):\n%s", diff)
	}

	// A grant wider than the client's allowed scopes (issued before the
	// configuration narrowed them) can no longer be refreshed.
	raw := randomToken(refreshBytes)
	now := time.Now().UTC()
	err := e.store.Update(t.Context(), func(tx *registry.Txn) error {
		return tx.PutRefreshToken(&registry.RefreshToken{
			Hash: hashSecret(raw), GrantID: "g-wide", ClientID: sc.ID, Subject: testUser,
			Scope: "mcp:read mcp:write", Resource: testResource, CreatedAt: now,
			ExpiresAt: now.Add(time.Hour),
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	status, body := tokenForm(t, e.srv, url.Values{"grant_type": {"refresh_token"},
		"client_id": {sc.ID}, "refresh_token": {raw}}, "", "")
	if status != http.StatusBadRequest || body["error"] != errInvalidScope {
		t.Errorf("refresh of a wide grant: %d %v, want 400 invalid_scope", status, body)
	}
}

// TestConfiguredClientWinsOverDynamic: a dynamic registration with a
// configured id is ignored, with a warning at start.
func TestConfiguredClientWinsOverDynamic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	err := e.store.Update(t.Context(), func(tx *registry.Txn) error {
		return tx.PutClient(&registry.Client{ID: "shared", TokenEndpointAuthMethod: authNone,
			RedirectURIs: []string{"https://dynamic.example.com/cb"}, CreatedAt: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.srv.cfg
	cfg.StaticClients = []StaticClient{{ID: "shared", Name: "Configured",
		RedirectURIs: []string{"https://configured.example.com/cb"}}}
	logger, logs := captureLogs()
	srv, err := NewServer(cfg, e.store, e.srv.keys, e.tokens, logger)
	if err != nil {
		t.Fatal(err)
	}
	if len(logs.Lines("level=WARN", "client_id=shared", "configured client wins")) != 1 {
		t.Errorf("no warning about the shadowed registration:\n%s", logs.Lines())
	}
	rc, oe := srv.resolveClient(t.Context(), "shared", "")
	if oe != nil || rc.kind != kindStatic || rc.Name != "Configured" {
		t.Errorf("resolved %+v, %v; want the configured client", rc, oe)
	}
	if !srv.reservedClientID("shared") || srv.reservedClientID("other") {
		t.Error("reservedClientID does not follow the configuration")
	}
}

func TestStaticClientConfigErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	redirect := []string{"https://app.example.com/cb"}
	tests := []struct {
		name    string
		clients []StaticClient
		want    string
	}{
		{"empty id", []StaticClient{{RedirectURIs: redirect}}, "id must be"},
		{"id with space", []StaticClient{{ID: "a b", RedirectURIs: redirect}}, "id must be"},
		{"twice", []StaticClient{{ID: "a", RedirectURIs: redirect},
			{ID: "a", RedirectURIs: redirect}}, "configured twice"},
		{"no redirect", []StaticClient{{ID: "a"}}, "no redirect URI"},
		{"http redirect", []StaticClient{{ID: "a",
			RedirectURIs: []string{"http://app.example.com/cb"}}}, "redirect URI"},
		{"bad scope", []StaticClient{{ID: "a", RedirectURIs: redirect,
			Scopes: []string{"a b"}}}, "invalid scope"},
		{"bad grant", []StaticClient{{ID: "a", RedirectURIs: redirect,
			GrantTypes: []string{"client_credentials"}}}, "not supported"},
		{"no code grant", []StaticClient{{ID: "a", RedirectURIs: redirect,
			GrantTypes: []string{"refresh_token"}}}, "must include authorization_code"},
		{"two secrets", []StaticClient{{ID: "a", RedirectURIs: redirect,
			SecretBcrypt: staticHash, SecretEnv: "X"}}, "give the secret once"},
		{"not bcrypt", []StaticClient{{ID: "a", RedirectURIs: redirect,
			SecretBcrypt: "plain"}}, "not a bcrypt hash"},
		{"missing file", []StaticClient{{ID: "a", RedirectURIs: redirect,
			SecretFile: "/nonexistent/secret"}}, "reading the secret"},
		{"unset variable", []StaticClient{{ID: "a", RedirectURIs: redirect,
			SecretEnv: "MCP_AUTHZ_TEST_UNSET_VARIABLE"}}, "the secret is empty"},
		{"none with secret", []StaticClient{{ID: "a", RedirectURIs: redirect,
			SecretBcrypt: staticHash, TokenEndpointAuthMethod: "none"}}, "cannot have a secret"},
		{"post without secret", []StaticClient{{ID: "a", RedirectURIs: redirect,
			TokenEndpointAuthMethod: authSecretPost}}, "needs a secret"},
		{"unknown method", []StaticClient{{ID: "a", RedirectURIs: redirect, SecretBcrypt: staticHash,
			TokenEndpointAuthMethod: "private_key_jwt"}}, "want none"},
		{"bad name", []StaticClient{{ID: "a", Name: "x\u202ey", RedirectURIs: redirect}},
			"name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := e.srv.cfg
			cfg.StaticClients = tt.clients
			_, err := NewServer(cfg, e.store, e.srv.keys, e.tokens, discard())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewServer error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
