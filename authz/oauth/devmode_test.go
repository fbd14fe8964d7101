package oauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/registry"
)

func withDevMode(counter *devCounter) envOption {
	return func(c *Config) {
		c.DevMode = true
		if counter != nil {
			c.OnDevModeUse = counter.use
		}
	}
}

func TestDevModeNeedsLoopbackIssuer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		issuer string
		ok     bool
	}{
		{"http://localhost:9000", true},
		{"http://127.0.0.1:9000", true},
		{"http://127.8.9.10", true},
		{"http://[::1]:9000/t1", true},
		{"https://auth.example.com", false},
		{"http://10.0.0.5:9000", false},
		{"http://localhost.example.com", false},
		{"http://0.0.0.0:9000", false},
	}
	for _, tt := range tests {
		t.Run(tt.issuer, func(t *testing.T) {
			t.Parallel()
			cfg := e.srv.cfg
			cfg.Issuer, cfg.DevMode = tt.issuer, true
			_, err := NewServer(cfg, e.store, e.srv.keys, e.tokens, discard())
			if (err == nil) != tt.ok {
				t.Errorf("NewServer: %v, want ok %v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "loopback issuer") {
				t.Errorf("error %q does not explain", err)
			}
		})
	}
}

func TestDevModeAnnounced(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.srv.cfg
	cfg.DevMode = true
	logger, logs := captureLogs()
	if _, err := NewServer(cfg, e.store, e.srv.keys, e.tokens, logger); err != nil {
		t.Fatal(err)
	}
	if len(logs.Lines("level=WARN", "development mode is on", "dev_mode=true")) != 1 {
		t.Errorf("no announcement:\n%s", strings.Join(logs.Lines(), "\n"))
	}
	cfg.DevMode = false
	logger, logs = captureLogs()
	if _, err := NewServer(cfg, e.store, e.srv.keys, e.tokens, logger); err != nil {
		t.Fatal(err)
	}
	if got := logs.Lines("dev_mode"); len(got) != 0 {
		t.Errorf("dev mode mentioned while off: %q", got)
	}
}

// TestDevModeFlow: an unknown client id gets through /authorize, /token
// and the decision; every log line about it is a WARN with dev_mode=true,
// and each use is counted.
// unregisteredFlow runs the authorization code flow, a decision and a
// refresh for client id, which must work without being written to the
// registry (a metadata document client, or one development mode accepts).
func (e *testEnv) unregisteredFlow(id, redirect string) {
	t := e.t
	t.Helper()
	got := e.codeTokens(id, redirect)
	if e.store.Client(id) != nil {
		t.Errorf("client %s was written to the registry", id)
	}
	if r := e.decide(got["access_token"].(string)); r != authz.ReasonOK {
		t.Errorf("decision %s, want ok", r)
	}
	status, body := tokenForm(t, e.srv, url.Values{"grant_type": {"refresh_token"},
		"client_id": {id}, "refresh_token": {got["refresh_token"].(string)}}, "", "")
	if status != http.StatusOK {
		t.Errorf("refresh: %d %v", status, body)
	}
}

func TestDevModeFlow(t *testing.T) {
	t.Parallel()
	counter := &devCounter{}
	e := newEnv(t, withDevMode(counter))
	logs := e.logServer()
	const id = "my-local-experiment"
	redirect := "http://127.0.0.1:9999/callback"

	e.unregisteredFlow(id, redirect)

	for _, where := range []string{DevUseAuthorize, DevUseClientAuth, DevUseDecision} {
		if counter.get(where) == 0 {
			t.Errorf("no use counted at %s", where)
		}
	}
	about := logs.Lines("client_id=" + id)
	for _, want := range []string{"authorization code issued", "tokens issued",
		"unregistered client accepted", "passes the decision"} {
		if len(logs.Lines("client_id="+id, want)) == 0 {
			t.Errorf("no %q line:\n%s", want, strings.Join(about, "\n"))
		}
	}
	for _, l := range about {
		if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "dev_mode=true") {
			t.Errorf("line about a dev client without WARN and dev_mode=true: %s", l)
		}
		if strings.Count(l, "dev_mode=") != 1 {
			t.Errorf("dev_mode twice: %s", l)
		}
	}
}

func TestDevModeRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withDevMode(nil))
	err := e.store.Update(t.Context(), func(tx *registry.Txn) error {
		return tx.PutClient(&registry.Client{ID: "revoked-1", TokenEndpointAuthMethod: authNone,
			RedirectURIs: []string{"http://127.0.0.1/cb"}, CreatedAt: time.Now(),
			RevokedAt: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, challenge := pkce()
	tests := []struct {
		name, id, redirect, want string
	}{
		{"https redirect", "dev-1", "https://attacker.example/cb", errInvalidRequest},
		{"no redirect", "dev-1", "", errInvalidRequest},
		{"javascript redirect", "dev-1", "javascript:alert(1)//", errInvalidRequest},
		{"http to a non-loopback host", "dev-1", "http://192.168.1.5/cb", errInvalidRequest},
		{"id with a space", "dev 1", "http://127.0.0.1/cb", errInvalidClient},
		{"revoked client stays revoked", "revoked-1", "http://127.0.0.1/cb", errInvalidClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := authParams(tt.id, tt.redirect, challenge)
			if tt.redirect == "" {
				q.Del("redirect_uri")
			}
			resp := e.with(t).authorizeStatus(q)
			body := decodeJSON(t, resp)
			if resp.StatusCode != http.StatusBadRequest || body["error"] != tt.want {
				t.Errorf("authorize: %d %v, want 400 %s", resp.StatusCode, body, tt.want)
			}
		})
	}
	for _, redirect := range []string{"http://localhost:1234/cb", "cursor://dev/cb"} {
		resp := e.authorizeStatus(authParams("dev-1", redirect, challenge))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("redirect %s: status %d, want the login page", redirect, resp.StatusCode)
		}
	}
	if known, revoked := e.srv.ClientKnown("revoked-1"); !known || !revoked {
		t.Error("a revoked client is not revoked in development mode")
	}
}

func TestDevModeOffRefusesUnknownClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, challenge := pkce()
	resp := e.authorizeStatus(authParams("dev-1", "http://127.0.0.1/cb", challenge))
	if body := decodeJSON(t, resp); body["error"] != errInvalidClient {
		t.Errorf("authorize: %v, want invalid_client", body)
	}
	status, body := tokenForm(t, e.srv, url.Values{"grant_type": {"refresh_token"},
		"client_id": {"dev-1"}, "refresh_token": {"x"}}, "", "")
	if status != http.StatusUnauthorized || body["error"] != errInvalidClient {
		t.Errorf("token: %d %v, want 401 invalid_client", status, body)
	}
	if known, _ := e.srv.ClientKnown("dev-1"); known {
		t.Error("an unknown client is known")
	}
}
