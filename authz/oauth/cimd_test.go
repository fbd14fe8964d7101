package oauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mcp-authz/mcp-authz/authz/cimd"
)

// TestCIMDFlow: a client identified by a metadata document URL runs the
// whole flow; the pages say the id is a URL and the name unverified; the
// client is never stored and its tokens pass the decision.
func TestCIMDFlow(t *testing.T) {
	t.Parallel()
	h := newDocHost(t)
	id := h.publish("/oauth/client.json", "Doc Client", "http://127.0.0.1/callback",
		"https://app.example.com/cb")
	e := newEnv(t, withDocHost(h))
	redirect := "http://127.0.0.1:5678/callback"

	_, challenge := pkce()
	b := e.browser()
	resp := e.login(b, authParams(id, redirect, challenge))
	page := readBody(t, resp)
	for _, want := range []string{"Doc Client", "not verified", id, "127.0.0.1:5678",
		"Any program running here could claim to be this client"} {
		if !strings.Contains(page, want) {
			t.Errorf("consent page lacks %q:\n%s", want, page)
		}
	}

	e.unregisteredFlow(id, redirect)
	status, body := tokenForm(t, e.srv, url.Values{"grant_type": {"refresh_token"},
		"client_id": {id}, "client_secret": {"guess"}, "refresh_token": {"x"}}, "", "")
	if status != http.StatusUnauthorized || !strings.Contains(body["error_description"].(string),
		"must authenticate with none") {
		t.Errorf("secret from a document client: %d %v", status, body)
	}
}

func TestCIMDAuthorizeRefusals(t *testing.T) {
	t.Parallel()
	h := newDocHost(t)
	good := h.publish("/good.json", "Good", "https://app.example.com/cb")
	h.put("/wrong-id.json", `{"client_id":"https://elsewhere.example/c.json",`+
		`"redirect_uris":["https://app.example.com/cb"]}`)
	h.put("/secret.json", `{"client_id":"`+h.ts.URL+`/secret.json",`+
		`"redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":`+
		`"client_secret_basic"}`)
	policy := h.publish("/policy.json", "Policy", "https://blocked.example.com/cb")
	e := newEnv(t, withDocHost(h), func(c *Config) {
		c.Registration.DenyRedirectHosts = []string{"blocked.example.com"}
	})
	_, challenge := pkce()
	tests := []struct {
		name, id, redirect, code, detail string
	}{
		{"unregistered redirect", good, "https://evil.example/cb", errInvalidRequest,
			"not registered"},
		{"missing document", h.ts.URL + "/missing.json", "https://app.example.com/cb",
			errInvalidClient, "HTTP status 404"},
		{"wrong client_id", h.ts.URL + "/wrong-id.json", "https://app.example.com/cb",
			errInvalidClient, "client_id differs"},
		{"shared secret method", h.ts.URL + "/secret.json", "https://app.example.com/cb",
			errInvalidClient, "cannot be used with a metadata document"},
		{"redirect policy", policy, "https://blocked.example.com/cb", errInvalidClient,
			"redirect policy"},
		{"invalid URL", "https://app.example.com/", "https://app.example.com/cb",
			errInvalidClient, "needs a path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := e.with(t).authorizeStatus(authParams(tt.id, tt.redirect, challenge))
			body := decodeJSON(t, resp)
			desc, _ := body["error_description"].(string)
			if resp.StatusCode != http.StatusBadRequest || body["error"] != tt.code ||
				!strings.Contains(desc, tt.detail) {
				t.Errorf("authorize: %d %v, want 400 %s mentioning %q", resp.StatusCode, body,
					tt.code, tt.detail)
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("redirected to %s", loc)
			}
		})
	}
}

// TestCIMDRefusesNonPublicAddress is the attack-suite case at the
// authorization server: a client id URL whose host resolves to a loopback,
// private or link-local address is refused at /authorize and /token before
// any connection is made.
func TestCIMDRefusesNonPublicAddress(t *testing.T) {
	t.Parallel()
	dial := &dialLog{}
	e := newEnv(t, func(c *Config) {
		c.CIMD = cimd.Options{Resolver: fakeDNS{
			"loop.example": {"127.0.0.1"}, "private.example": {"10.0.0.8"},
			"metadata.example": {"169.254.169.254"}, "v6.example": {"::1"},
			"mixed.example": {"93.184.215.14", "192.168.0.10"},
		}, DialContext: dial.DialContext, Logger: discard()}
	})
	_, challenge := pkce()
	for _, id := range []string{
		"https://loop.example/c.json", "https://private.example/c.json",
		"https://metadata.example/latest/meta-data", "https://v6.example/c.json",
		"https://mixed.example/c.json", "https://127.0.0.1/c.json", "https://[fe80::1]/c.json",
	} {
		t.Run(id, func(t *testing.T) {
			resp := e.with(t).authorizeStatus(authParams(id, "https://app.example.com/cb",
				challenge))
			body := decodeJSON(t, resp)
			if resp.StatusCode != http.StatusBadRequest || body["error"] != errInvalidClient ||
				!strings.Contains(body["error_description"].(string), "non-public address") {
				t.Errorf("authorize: %d %v", resp.StatusCode, body)
			}
			status, body := tokenForm(t, e.srv, url.Values{"grant_type": {"refresh_token"},
				"client_id": {id}, "refresh_token": {"x"}}, "", "")
			if status != http.StatusUnauthorized || body["error"] != errInvalidClient {
				t.Errorf("token: %d %v", status, body)
			}
		})
	}
	if n := dial.count(); n != 0 {
		t.Errorf("%d connections attempted, want none", n)
	}
}

func TestCIMDDomainListsInDecision(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.CIMD = cimd.Options{DenyDomains: []string{"*.evil.example"}, Logger: discard()}
	})
	tests := []struct {
		id             string
		known, revoked bool
	}{
		{"https://app.example.com/c.json", true, false},
		{"https://x.evil.example/c.json", true, true},
		{"not-a-url", false, false},
	}
	for _, tt := range tests {
		known, revoked := e.srv.ClientKnown(tt.id)
		if known != tt.known || revoked != tt.revoked {
			t.Errorf("ClientKnown(%q) = %v, %v; want %v, %v", tt.id, known, revoked,
				tt.known, tt.revoked)
		}
	}
}

func TestCIMDDisabled(t *testing.T) {
	t.Parallel()
	h := newDocHost(t)
	id := h.publish("/c.json", "Doc", "https://app.example.com/cb")
	e := newEnv(t, withDocHost(h), func(c *Config) { c.DisableCIMD = true })
	m := decodeJSON(t, e.do(http.MethodGet, "/.well-known/oauth-authorization-server", nil, nil))
	if _, ok := m["client_id_metadata_document_supported"]; ok {
		t.Error("metadata advertises documents while they are disabled")
	}
	_, challenge := pkce()
	body := decodeJSON(t, e.authorizeStatus(authParams(id, "https://app.example.com/cb",
		challenge)))
	if body["error"] != errInvalidClient {
		t.Errorf("authorize: %v, want invalid_client", body)
	}
	if known, _ := e.srv.ClientKnown(id); known {
		t.Error("a document client is known while documents are disabled")
	}
}

func TestCIMDSeededDocument(t *testing.T) {
	t.Parallel()
	const id = "https://claude.ai/oauth/mcp-oauth-client-metadata"
	dial := &dialLog{}
	e := newEnv(t, func(c *Config) {
		c.CIMD = cimd.Options{Seed: map[string]string{id: `{"client_id":"` + id + `",` +
			`"client_name":"Claude","redirect_uris":["https://claude.ai/api/mcp/auth_callback"]}`},
			Resolver: fakeDNS{}, DialContext: dial.DialContext, Logger: discard()}
	})
	_, challenge := pkce()
	resp := e.authorizeStatus(authParams(id, "https://claude.ai/api/mcp/auth_callback",
		challenge))
	page := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Claude") {
		t.Errorf("authorize: %d %s", resp.StatusCode, page)
	}
	if dial.count() != 0 {
		t.Error("a seeded document was fetched")
	}
}

// BenchmarkClientKnown measures the client check the ext_authz decision
// makes for every request, for each kind of client.
func BenchmarkClientKnown(b *testing.B) {
	e := newEnv(b, withStatic(StaticClient{ID: "static-1",
		RedirectURIs: []string{"http://127.0.0.1/cb"}}), func(c *Config) {
		c.CIMD.AllowDomains = []string{"*.example.com"}
	})
	dynamic := e.publicClient("http://127.0.0.1/cb")
	for _, bc := range []struct{ name, id string }{
		{"configured", "static-1"},
		{"document", "https://app.example.com/oauth/client.json"},
		{"dynamic", dynamic},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if known, revoked := e.srv.ClientKnown(bc.id); !known || revoked {
					b.Fatal("not known")
				}
			}
		})
	}
}
