package authz

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConfigWithDefaults(t *testing.T) {
	in := Config{Issuer: testIssuer, Resources: []Resource{
		{URL: "HTTPS://MCP.Example.com:443/", Scopes: []string{"a"},
			RequiredScopes: []string{"b"}},
		{URL: "http://localhost:80/mcp/"},
	}}
	want := Config{
		Issuer: testIssuer,
		Resources: []Resource{
			{URL: "https://mcp.example.com", Scopes: []string{"a", "b"},
				RequiredScopes: []string{"b"}},
			{URL: "http://localhost/mcp/"},
		},
		AccessTokenTTL: time.Hour,
		Leeway:         30 * time.Second,
	}
	got := in.WithDefaults()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WithDefaults (-want +got):\n%s", diff)
	}
	if in.Resources[0].URL != "HTTPS://MCP.Example.com:443/" || len(in.Resources[0].Scopes) != 1 {
		t.Error("WithDefaults changed its receiver's resources")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := func() Config { return testConfig().WithDefaults() }
	tests := []struct {
		name string
		edit func(*Config)
		bad  bool
	}{
		{"valid", func(*Config) {}, false},
		{"issuer with path", func(c *Config) { c.Issuer = "https://as.example.com/t1" }, false},
		{"no issuer", func(c *Config) { c.Issuer = "" }, true},
		{"relative issuer", func(c *Config) { c.Issuer = "/as" }, true},
		{"issuer with query", func(c *Config) { c.Issuer = "https://as?x=1" }, true},
		{"issuer with empty query", func(c *Config) { c.Issuer = "https://as?" }, true},
		{"issuer with fragment", func(c *Config) { c.Issuer = "https://as#f" }, true},
		{"issuer ftp", func(c *Config) { c.Issuer = "ftp://as" }, true},
		{"issuer with user", func(c *Config) { c.Issuer = "https://u@as" }, true},
		{"no resource", func(c *Config) { c.Resources = nil }, true},
		{"relative resource", func(c *Config) { c.Resources[0].URL = "/mcp" }, true},
		{"resource with fragment", func(c *Config) { c.Resources[0].URL += "#x" }, true},
		{"resource with query", func(c *Config) { c.Resources[0].URL += "?x" }, true},
		{"resource mailto", func(c *Config) { c.Resources[0].URL = "mailto:a@b" }, true},
		{"resource with quote", func(c *Config) { c.Resources[0].URL = `http://h/a"b` }, true},
		{"duplicate resource", func(c *Config) {
			c.Resources = append(c.Resources, Resource{URL: testRoot + ":443/"})
		}, true},
		{"scope with space", func(c *Config) { c.Resources[0].Scopes = []string{"a b"} }, true},
		{"scope with quote", func(c *Config) {
			c.Resources[0].RequiredScopes = []string{`a"`}
		}, true},
		{"negative ttl", func(c *Config) { c.AccessTokenTTL = -1 }, true},
		{"negative leeway", func(c *Config) { c.Leeway = -1 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok()
			tt.edit(&c)
			if err := c.Validate(); (err != nil) != tt.bad {
				t.Errorf("Validate = %v, want error: %v", err, tt.bad)
			}
		})
	}
}

func TestConfigResource(t *testing.T) {
	cfg := testConfig().WithDefaults()
	tests := []struct{ in, want string }{
		{testResource, testResource},
		{"HTTP://LOCALHOST:8080/mcp", testResource},
		{"http://localhost:8080/mcp/", ""},
		{"http://localhost:8080/MCP", ""},
		{"http://localhost:8080", ""},
		{testRoot, testRoot},
		{testRoot + "/", testRoot},
		{"https://mcp.example.com:443", testRoot},
		{"http://mcp.example.com", ""},
		{"https://mcp.example.com/team/a", "https://mcp.example.com/team/a"},
		{"https://mcp.example.com/team/a?x", ""},
		{"", ""},
		{"::", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, ok := cfg.Resource(tt.in)
			got := ""
			if ok {
				got = r.URL
			}
			if got != tt.want {
				t.Errorf("Resource(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}

	// Without WithDefaults the configured spelling is still found.
	raw := Config{Resources: []Resource{{URL: "https://h.example/"}}}
	if r, ok := raw.Resource("https://h.example"); !ok || r.URL != "https://h.example/" {
		t.Errorf("Resource on a raw config = %v, %v", r, ok)
	}
}

func TestResourceMetadataURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://h/p", "https://h/.well-known/oauth-protected-resource/p"},
		{"https://h/p/q/", "https://h/.well-known/oauth-protected-resource/p/q/"},
		{"http://localhost:8080/mcp", testMeta},
		{"https://h", "https://h/.well-known/oauth-protected-resource"},
		{"https://h/", "https://h/.well-known/oauth-protected-resource"},
		{"https://h/a%20b", "https://h/.well-known/oauth-protected-resource/a%20b"},
		{"/relative", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ResourceMetadataURL(tt.in); got != tt.want {
				t.Errorf("ResourceMetadataURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
