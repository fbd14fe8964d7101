package oauth

import (
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
)

func TestNewServerConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := []authz.Resource{{URL: testResource}}
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"defaults", Config{Config: authz.Config{Issuer: "http://localhost:9000",
			Resources: res}}, false},
		{"no resources", Config{Config: authz.Config{Issuer: "http://localhost:9000"}}, true},
		{"relative issuer", Config{Config: authz.Config{Issuer: "/auth", Resources: res}}, true},
		{"issuer with query", Config{Config: authz.Config{Issuer: "https://a.example/?x=1",
			Resources: res}}, true},
		{"negative code ttl", Config{Config: authz.Config{Issuer: "http://localhost:9000",
			Resources: res}, CodeTTL: -time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, err := NewServer(tt.cfg, e.store, e.srv.keys, e.srv.tokens, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewServer error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			c := srv.cfg
			if c.CodeTTL != DefaultCodeTTL || c.RefreshTTL != DefaultRefreshTTL ||
				c.SessionTTL != DefaultSessionTTL || c.AuthorizeTTL != DefaultAuthorizeTTL ||
				c.AccessTokenTTL != authz.DefaultAccessTokenTTL {
				t.Errorf("defaults not applied: %+v", c)
			}
		})
	}
	if _, err := NewServer(tests[0].cfg, nil, e.srv.keys, e.srv.tokens, nil); err == nil {
		t.Errorf("NewServer accepted a nil store")
	}
}
