package cimd

import (
	"net/netip"
	"strings"
	"testing"
)

func TestValidateClientIDURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, id string
		ok       bool
	}{
		{"claude", "https://claude.ai/oauth/mcp-oauth-client-metadata", true},
		{"port and query", "https://app.example.com:8443/client.json?v=2", true},
		{"ipv6 literal", "https://[2001:4860::1]/c", true},
		{"http", "http://app.example.com/client.json", false},
		{"upper-case scheme", "HTTPS://app.example.com/client.json", false},
		{"no path", "https://app.example.com", false},
		{"root path", "https://app.example.com/", false},
		{"fragment", "https://app.example.com/c#x", false},
		{"empty fragment", "https://app.example.com/c#", false},
		{"user info", "https://user@app.example.com/c", false},
		{"password", "https://u:p@app.example.com/c", false},
		{"dot segment", "https://app.example.com/a/./c", false},
		{"dot-dot segment", "https://app.example.com/a/../c", false},
		{"trailing dot-dot", "https://app.example.com/a/..", false},
		{"encoded dot-dot", "https://app.example.com/a/%2e%2E/c", false},
		{"encoded dot", "https://app.example.com/%2E/c", false},
		{"dots in name", "https://app.example.com/a/..b/c.json", true},
		{"bad percent", "https://app.example.com/%zz", false},
		{"space", "https://app.example.com/a b", false},
		{"backslash", `https://app.example.com\@evil.example/c`, false},
		{"non-ascii", "https://app.example.com/ü", false},
		{"port zero", "https://app.example.com:0/c", false},
		{"empty port", "https://app.example.com:/c", false},
		{"no host", "https:///c", false},
		{"dot host", "https://./c", false},
		{"too long", "https://app.example.com/" + strings.Repeat("a", MaxURLLen), false},
		{"opaque", "https:app.example.com/c", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateClientIDURL(tt.id)
			if (err == nil) != tt.ok {
				t.Errorf("ValidateClientIDURL(%q) = %v, want ok %v", tt.id, err, tt.ok)
			}
		})
	}
}

func TestHostOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id, host string
		ok       bool
	}{
		{"https://App.Example.com/c", "App.Example.com", true},
		{"https://app.example.com:8443/c", "app.example.com", true},
		{"https://app.example.com./c", "app.example.com", true},
		{"https://[::1]:8443/c", "::1", true},
		{"https://app.example.com?x", "app.example.com", true},
		{"https://u@app.example.com/c", "", false},
		{"http://app.example.com/c", "", false},
		{"https://[::1/c", "", false},
		{"https://./c", "", false},
		{"https://:443/c", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			t.Parallel()
			host, ok := hostOf(tt.id)
			if host != tt.host || ok != tt.ok {
				t.Errorf("hostOf(%q) = %q, %v; want %q, %v", tt.id, host, ok, tt.host, tt.ok)
			}
		})
	}
}

func TestDomainPattern(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"example.com", "example.com", true},
		{"example.com", "EXAMPLE.com", true},
		{"Example.COM.", "example.com", true},
		{"example.com", "app.example.com", false},
		{"*.example.com", "app.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "badexample.com", false},
		{"*.example.com", "example.com.evil.test", false},
		{"[::1]", "::1", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.host, func(t *testing.T) {
			t.Parallel()
			p, err := parseDomainPattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.matches(tt.host); got != tt.want {
				t.Errorf("matches = %v, want %v", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "*", "*.", "a*.example.com", "https://example.com",
		"example.com/x", "u@example.com"} {
		if _, err := parseDomainPattern(bad); err == nil {
			t.Errorf("parseDomainPattern(%q) accepted", bad)
		}
	}
}

func TestBlockedAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr    string
		blocked bool
	}{
		{"127.0.0.1", true},
		{"127.255.0.9", true},
		{"10.1.2.3", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"172.32.0.1", false},
		{"192.168.1.1", true},
		{"169.254.169.254", true},
		{"100.64.0.1", true},
		{"0.0.0.0", true},
		{"255.255.255.255", true},
		{"224.0.0.251", true},
		{"198.18.0.1", true},
		{"192.0.2.1", true},
		{"8.8.8.8", false},
		{"93.184.215.14", false},
		{"::", true},
		{"::1", true},
		{"::127.0.0.1", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"::ffff:8.8.8.8", false},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"fc00::1", true},
		{"fd12:3456::1", true},
		{"fec0::1", true},
		{"ff02::1", true},
		{"2001:db8::1", true},
		{"2001::1", true},
		{"64:ff9b::a00:1", true},    // NAT64 of 10.0.0.1
		{"64:ff9b::808:808", false}, // NAT64 of 8.8.8.8
		{"2002:7f00:1::1", true},    // 6to4 of 127.0.0.1
		{"2002:808:808::1", false},  // 6to4 of 8.8.8.8
		{"2606:4700:4700::1111", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			if got := blockedAddr(netip.MustParseAddr(tt.addr)); got != tt.blocked {
				t.Errorf("blockedAddr(%s) = %v, want %v", tt.addr, got, tt.blocked)
			}
		})
	}
	if !blockedAddr(netip.Addr{}) {
		t.Error("the zero address is not blocked")
	}
}
