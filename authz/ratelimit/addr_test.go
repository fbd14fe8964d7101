package ratelimit

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestClientAddr(t *testing.T) {
	t.Parallel()
	proxies, err := ParsePrefixes([]string{"10.0.0.0/8", "::1", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"direct", "198.51.100.7:4242", nil, proxies, "198.51.100.7"},
		{"untrusted peer's header ignored", "198.51.100.7:4242", []string{"1.2.3.4"},
			proxies, "198.51.100.7"},
		{"nothing trusted by default", "127.0.0.1:1", []string{"1.2.3.4"}, nil, "127.0.0.1"},
		{"sidecar proxy", "127.0.0.1:5555", []string{"203.0.113.9"}, proxies, "203.0.113.9"},
		{"client spoofs a left entry", "10.1.2.3:80", []string{"6.6.6.6, 203.0.113.9"},
			proxies, "203.0.113.9"},
		{"chain of trusted proxies", "10.1.2.3:80",
			[]string{"203.0.113.9, 10.9.9.9", "10.8.8.8"}, proxies, "203.0.113.9"},
		{"all trusted", "10.1.2.3:80", []string{"10.2.2.2, 10.3.3.3"}, proxies, "10.2.2.2"},
		{"garbage stops the walk", "10.1.2.3:80", []string{"203.0.113.9, bogus, 10.9.9.9"},
			proxies, "10.9.9.9"},
		{"garbage at the right", "10.1.2.3:80", []string{"bogus"}, proxies, "10.1.2.3"},
		{"trusted peer without header", "10.1.2.3:80", nil, proxies, "10.1.2.3"},
		{"entry with port", "[::1]:80", []string{"203.0.113.9:1234"}, proxies, "203.0.113.9"},
		{"ipv6 entry", "[::1]:80", []string{" 2001:db8::1 "}, proxies, "2001:db8::1"},
		{"mapped peer", "[::ffff:10.1.2.3]:80", []string{"203.0.113.9"}, proxies,
			"203.0.113.9"},
		{"unix socket", "@", []string{"203.0.113.9"}, proxies, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientAddr(r, tt.trusted).String(); got != tt.want {
				t.Errorf("ClientAddr = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestClientAddrHopLimit(t *testing.T) {
	t.Parallel()
	trusted, _ := ParsePrefixes([]string{"10.0.0.0/8"})
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Set("X-Forwarded-For", "203.0.113.9,"+strings.Repeat("10.0.0.2,", 100)+"10.0.0.3")
	if got := ClientAddr(r, trusted); got != netip.MustParseAddr("10.0.0.2") {
		t.Errorf("ClientAddr past the hop limit = %s, want the last trusted hop examined", got)
	}
}

func TestKey(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"203.0.113.9":             "203.0.113.9",
		"2001:db8:1:2:3:4:5:6":    "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9999": "2001:db8:1:2::/64",
		"::1":                     "::/64",
	}
	for in, want := range tests {
		if got := Key(netip.MustParseAddr(in)); got != want {
			t.Errorf("Key(%s) = %s, want %s", in, got, want)
		}
	}
	if got := Key(netip.Addr{}); got != "unknown" {
		t.Errorf("Key(zero) = %s", got)
	}
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	got, err := ParsePrefixes([]string{"10.1.2.3/8", "192.168.1.1", "::ffff:127.0.0.1", " fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.168.1.1/32", "127.0.0.1/32", "fd00::/8"}
	var gotS []string
	for _, p := range got {
		gotS = append(gotS, p.String())
	}
	if diff := cmp.Diff(want, gotS); diff != "" {
		t.Errorf("ParsePrefixes (-want +got):\n%s", diff)
	}
	if _, err := ParsePrefixes([]string{"nope"}); err == nil {
		t.Errorf("ParsePrefixes accepted garbage")
	}
}

// FuzzClientAddr checks that any header gives a valid address that is the
// peer or one of the header's entries, and never panics.
func FuzzClientAddr(f *testing.F) {
	f.Add("127.0.0.1:1", "203.0.113.9, 10.0.0.1")
	f.Add("[::1]:80", "bogus,,[2001:db8::1]:5")
	f.Add("@", "")
	trusted := append([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, LoopbackPrefixes...)
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		got := ClientAddr(r, trusted)
		peer := parseAddr(remote)
		if got == peer {
			return
		}
		if !peer.IsValid() || !contains(trusted, peer) {
			t.Fatalf("header used for untrusted peer %q: %s", remote, got)
		}
		for _, h := range forwardedHops([]string{xff}) {
			if parseAddr(h) == got {
				return
			}
		}
		t.Fatalf("ClientAddr = %s is neither the peer nor an entry of %q", got, xff)
	})
}
