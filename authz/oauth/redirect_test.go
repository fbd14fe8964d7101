package oauth

import "testing"

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
