package oauth

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/registry"
)

func TestValidateRedirectURI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		uri string
		ok  bool
	}{
		{"https://claude.ai/api/mcp/auth_callback", true},
		{"https://vscode.dev/redirect", true},
		{"cursor://anysphere.cursor-mcp/oauth/callback", true},
		{"com.example.app:/oauth2redirect", true},
		{"http://localhost:8787/callback", true},
		{"http://localhost", true},
		{"http://127.0.0.1", true},
		{"http://127.0.0.1:33418/", true},
		{"http://127.1.2.3/cb", true},
		{"http://[::1]:5000/cb", true},
		{"https://app.example/cb?tenant=1", true},
		{"HTTP://LOCALHOST/cb", true},
		{"http://app.example/cb", false},
		{"http://10.0.0.1/cb", false},
		{"http://localhost.evil.example/cb", false},
		{"http://[::2]/cb", false},
		{"https:///cb", false},
		{"https://app.example/cb#x", false},
		{"https://app.example/cb#", false},
		{"https://u:p@app.example/cb", false},
		{"javascript:alert(1)", false},
		{"JavaScript://x/%0aalert(1)", false},
		{"data:text/html,x", false},
		{"file:///etc/passwd", false},
		{"vbscript:x", false},
		{"mailto:a@b.example", false},
		{"vscode://vscode.github-authentication/did-authenticate", true},
		{"claude://claude.ai/oauth/callback", true},
		{"myapp:/callback", true},
		{"Cursor://anysphere.cursor-mcp/cb", true},
		{"ftp://attacker.example/cb", false},
		{"ftps://attacker.example/cb", false},
		{"ws://attacker.example/cb", false},
		{"WSS://attacker.example/cb", false},
		{"intent://x/#Intent;scheme=https;end", false},
		{"intent://host/cb", false},
		{"android-app://com.example.app/https/attacker.example/cb", false},
		{"chrome://settings/cb", false},
		{"chrome-extension://abcdefghijklmnop/cb.html", false},
		{"about://blank/cb", false},
		{"blob://attacker.example/cb", false},
		{"filesystem://attacker.example/cb", false},
		{"tel://5551234/cb", false},
		{"sms://5551234/cb", false},
		{"ssh://attacker.example/cb", false},
		{"sftp://attacker.example/cb", false},
		{"smb://attacker.example/share/cb", false},
		{"ldap://attacker.example/cb", false},
		{"gopher://attacker.example/cb", false},
		{"view-source://attacker.example/cb", false},
		{"jar://attacker.example/x.jar!/cb", false},
		{"resource://gre/cb", false},
		{"moz-extension://abcd/cb", false},
		{"ms-browser-extension://abcd/cb", false},
		{"mailto://b.example/cb", false},
		{"javascript://x/cb", false},
		{"data://x/cb", false},
		{"file://host/cb", false},
		{"vbscript://x/cb", false},
		{"/relative", false},
		{"", false},
		{"https://app.example/c b", false},
		{"https://app.example/cb\r\nX: y", false},
		{"https://app.example/é", false},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			t.Parallel()
			err := validateRedirectURI(tt.uri)
			if (err == nil) != tt.ok {
				t.Errorf("validateRedirectURI(%q) = %v, want ok %v", tt.uri, err, tt.ok)
			}
		})
	}
}

func TestMatchRedirectURI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		registered []string
		requested  string
		want       bool
	}{
		{"exact https", []string{"https://claude.ai/api/mcp/auth_callback"},
			"https://claude.ai/api/mcp/auth_callback", true},
		{"https other port", []string{"https://claude.ai/cb"}, "https://claude.ai:8443/cb", false},
		{"https other path", []string{"https://claude.ai/cb"}, "https://claude.ai/cb/x", false},
		{"https added query", []string{"https://claude.ai/cb"}, "https://claude.ai/cb?x=1", false},
		{"private scheme exact", []string{"cursor://anysphere.cursor-mcp/oauth/callback"},
			"cursor://anysphere.cursor-mcp/oauth/callback", true},
		{"vs code port on bare loopback", []string{"http://127.0.0.1"},
			"http://127.0.0.1:33418/", true},
		{"vs code port on slash", []string{"http://127.0.0.1/"}, "http://127.0.0.1:40000/", true},
		{"localhost port", []string{"http://localhost:8787/callback"},
			"http://localhost:9999/callback", true},
		{"localhost no port", []string{"http://localhost/callback"},
			"http://localhost:51234/callback", true},
		{"ipv6 loopback port", []string{"http://[::1]/cb"}, "http://[::1]:1234/cb", true},
		{"loopback path differs", []string{"http://127.0.0.1/callback"},
			"http://127.0.0.1:5000/other", false},
		{"loopback query differs", []string{"http://127.0.0.1/cb?a=1"},
			"http://127.0.0.1:5000/cb?a=2", false},
		{"loopback host differs", []string{"http://localhost/cb"}, "http://127.0.0.1:5/cb", false},
		{"loopback user info", []string{"http://127.0.0.1/cb"},
			"http://evil@127.0.0.1:5/cb", false},
		{"loopback fragment", []string{"http://127.0.0.1/cb"}, "http://127.0.0.1:5/cb#x", false},
		{"https loopback keeps port", []string{"https://localhost:8443/cb"},
			"https://localhost:9443/cb", false},
		{"nothing registered", nil, "http://127.0.0.1/cb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := matchRedirectURI(tt.registered, tt.requested); got != tt.want {
				t.Errorf("matchRedirectURI(%q, %q) = %v, want %v",
					tt.registered, tt.requested, got, tt.want)
			}
		})
	}
}

// TestAuthorizeRefusesStoredBlockedRedirect checks that a redirect URI
// stored before its scheme was refused gets no authorization response.
func TestAuthorizeRefusesStoredBlockedRedirect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct{ name, uri string }{
		{"websocket", "wss://attacker.example/cb"},
		{"ftp", "ftp://attacker.example/cb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			id := "old-" + tt.name
			err := e.store.Update(t.Context(), func(tx *registry.Txn) error {
				return tx.PutClient(&registry.Client{ID: id, RedirectURIs: []string{tt.uri},
					TokenEndpointAuthMethod: authNone, CreatedAt: time.Now()})
			})
			if err != nil {
				t.Fatal(err)
			}
			_, challenge := pkce()
			for _, params := range []url.Values{
				authParams(id, tt.uri, challenge), withoutRedirect(authParams(id, "", challenge)),
			} {
				rec := e.do(http.MethodGet, "/authorize?"+params.Encode(), nil, nil)
				if rec.StatusCode != http.StatusBadRequest || rec.Header.Get("Location") != "" {
					t.Errorf("authorize %v: %d Location %q, want 400 without a redirect",
						params, rec.StatusCode, rec.Header.Get("Location"))
				}
			}
		})
	}
}

func withoutRedirect(v url.Values) url.Values {
	v.Del("redirect_uri")
	return v
}
