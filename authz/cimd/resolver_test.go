package cimd

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestResolveFetchesDocument(t *testing.T) {
	t.Parallel()
	s := newDocServer(t)
	id := s.url("/oauth/client.json")
	var gotAccept string
	s.serve(func(w http.ResponseWriter, r *http.Request) {
		gotAccept = r.Header.Get("Accept")
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		fmt.Fprint(w, docFor(id, ""))
	})
	r := s.resolver()
	c, err := r.Resolve(t.Context(), id)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if c.ID != id || c.Name != "Test Client" || c.TokenEndpointAuthMethod != "none" ||
		len(c.RedirectURIs) != 2 {
		t.Errorf("client %+v", c)
	}
	if gotAccept != "application/json" {
		t.Errorf("Accept = %q", gotAccept)
	}
	if diff := cmp.Diff([]string{"client.example.com"}, s.dns.looked()); diff != "" {
		t.Errorf("lookups (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"127.0.0.1:" + s.port}, s.dial.dialed()); diff != "" {
		t.Errorf("dials (-want +got):\n%s", diff)
	}
}

func TestResolveCachesByHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers []string
		mod     func(*Options)
		// fetch counts after resolving at 0, at +59s and at +10m.
		want [3]int64
	}{
		{"no headers: default ttl 5m", nil, nil, [3]int64{1, 1, 2}},
		{"max-age 60", []string{"Cache-Control", "public, max-age=60"}, nil,
			[3]int64{1, 1, 2}},
		{"max-age 30", []string{"Cache-Control", "max-age=30"}, nil, [3]int64{1, 2, 3}},
		{"s-maxage wins", []string{"Cache-Control", "max-age=1, s-maxage=3600"}, nil,
			[3]int64{1, 1, 1}},
		{"no-store", []string{"Cache-Control", "no-store"}, nil, [3]int64{2, 3, 4}},
		{"no-cache", []string{"Cache-Control", "no-cache"}, nil, [3]int64{2, 3, 4}},
		{"max-age 0", []string{"Cache-Control", "max-age=0"}, nil, [3]int64{2, 3, 4}},
		{"expires in 2m", []string{"Date", "Tue, 01 Sep 2026 12:00:00 GMT",
			"Expires", "Tue, 01 Sep 2026 12:02:00 GMT"}, nil, [3]int64{1, 1, 2}},
		{"expires in the past", []string{"Expires", "Tue, 01 Sep 2020 12:02:00 GMT"}, nil,
			[3]int64{2, 3, 4}},
		{"min ttl lifts max-age 30", []string{"Cache-Control", "max-age=30"},
			func(o *Options) { o.MinTTL = time.Minute }, [3]int64{1, 1, 2}},
		{"max ttl caps a day", []string{"Cache-Control", "max-age=86400"},
			func(o *Options) { o.MaxTTL = 5 * time.Minute }, [3]int64{1, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newDocServer(t)
			id := s.url("/c.json")
			s.serveDoc(docFor(id, ""), tt.headers...)
			var mods []func(*Options)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			r := s.resolver(mods...)
			var got [3]int64
			for i, step := range []time.Duration{0, 59 * time.Second, 10 * time.Minute} {
				s.clock.add(step)
				if i == 0 {
					// A second resolution at once is always the same.
					if _, err := r.Resolve(t.Context(), id); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := r.Resolve(t.Context(), id); err != nil {
					t.Fatal(err)
				}
				got[i] = s.hits.Load()
			}
			if got != tt.want {
				t.Errorf("fetches %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResolveFetchFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler func(s *docServer, id string) http.HandlerFunc
		mod     func(*Options)
		kind    error
		detail  string
	}{
		{"not found", func(*docServer, string) http.HandlerFunc {
			return http.NotFound
		}, nil, ErrFetch, "HTTP status 404"},
		{"html", func(_ *docServer, id string) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				fmt.Fprint(w, docFor(id, ""))
			}
		}, nil, ErrFetch, "not JSON"},
		{"oversize by length", func(_ *docServer, id string) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, docFor(id, `,"pad":"`+strings.Repeat("x", 2000)+`"`))
			}
		}, func(o *Options) { o.MaxBytes = 1024 }, ErrFetch, "larger than 1024 bytes"},
		{"oversize chunked", func(_ *docServer, id string) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"client_id":"`+id+`","pad":"`)
				w.(http.Flusher).Flush()
				fmt.Fprint(w, strings.Repeat("x", 2000)+`"}`)
			}
		}, func(o *Options) { o.MaxBytes = 1024 }, ErrFetch, "larger than 1024 bytes"},
		{"timeout", func(*docServer, string) http.HandlerFunc {
			return func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
		}, func(o *Options) { o.Timeout = 200 * time.Millisecond }, ErrFetch,
			"took longer than 200ms"},
		{"wrong client_id", func(s *docServer, _ string) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, docFor(s.url("/other.json"), ""))
			}
		}, nil, ErrInvalidDocument, "client_id differs"},
		{"cross-host redirect", func(s *docServer, _ string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				target := "https://other.example.com:" + s.port + "/c.json"
				http.Redirect(w, r, target, http.StatusFound)
			}
		}, nil, ErrFetch, "redirected to another host"},
		{"redirect to http", func(s *docServer, _ string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				target := "http://client.example.com:" + s.port + "/c.json"
				http.Redirect(w, r, target, http.StatusFound)
			}
		}, nil, ErrFetch, "redirected to another host"},
		{"redirect loop", func(*docServer, string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				n, _ := strconv.Atoi(r.URL.Query().Get("n"))
				http.Redirect(w, r, "/c.json?n="+strconv.Itoa(n+1), http.StatusFound)
			}
		}, nil, ErrFetch, "redirected too often"},
		{"unresolvable", func(*docServer, string) http.HandlerFunc { return nil },
			func(o *Options) { o.Resolver = &fakeDNS{} }, ErrFetch, "could not be resolved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newDocServer(t)
			id := s.url("/c.json")
			s.serve(tt.handler(s, id))
			var mods []func(*Options)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			r := s.resolver(mods...)
			c, err := r.Resolve(t.Context(), id)
			if c != nil {
				t.Fatalf("resolved %+v", c)
			}
			e := wantKind(t, err, tt.kind)
			if !strings.Contains(e.Public(), tt.detail) {
				t.Errorf("error %q, want it to contain %q", e.Public(), tt.detail)
			}
			for _, d := range s.dial.dialed() {
				if d != "127.0.0.1:"+s.port {
					t.Errorf("dialed %s", d)
				}
			}
		})
	}
}

func TestResolveFollowsSameOriginRedirect(t *testing.T) {
	t.Parallel()
	s := newDocServer(t)
	id := s.url("/old.json")
	s.serve(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old.json" {
			http.Redirect(w, r, "/new.json", http.StatusMovedPermanently)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, docFor(id, ""))
	})
	if _, err := s.resolver().Resolve(t.Context(), id); err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if got := s.hits.Load(); got != 2 {
		t.Errorf("requests = %d, want 2", got)
	}
}

// TestResolveRefusesNonPublicAddresses is the SSRF case of the attack
// suite: a client id URL whose host resolves to a loopback, private or
// link-local address is refused before any connection is attempted.
func TestResolveRefusesNonPublicAddresses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		url   string
		addrs []string
	}{
		{"loopback v4", "https://evil.example/c.json", []string{"127.0.0.1"}},
		{"localhost", "https://localhost/c.json", []string{"127.0.0.1", "::1"}},
		{"private 10/8", "https://evil.example/c.json", []string{"10.0.0.7"}},
		{"private 192.168", "https://evil.example/c.json", []string{"192.168.1.10"}},
		{"cloud metadata", "https://evil.example/c.json", []string{"169.254.169.254"}},
		{"loopback v6", "https://evil.example/c.json", []string{"::1"}},
		{"link-local v6", "https://evil.example/c.json", []string{"fe80::1"}},
		{"unique local v6", "https://evil.example/c.json", []string{"fd00::1"}},
		{"mapped loopback", "https://evil.example/c.json", []string{"::ffff:127.0.0.1"}},
		{"nat64 private", "https://evil.example/c.json", []string{"64:ff9b::a00:1"}},
		{"cgnat", "https://evil.example/c.json", []string{"100.64.1.1"}},
		{"unspecified", "https://evil.example/c.json", []string{"0.0.0.0"}},
		{"public and private", "https://evil.example/c.json",
			[]string{"93.184.215.14", "10.1.2.3"}},
		{"private and public", "https://evil.example/c.json",
			[]string{"10.1.2.3", "93.184.215.14"}},
		{"literal v4", "https://127.0.0.1/c.json", nil},
		{"literal v6", "https://[::1]:8443/c.json", nil},
		{"literal link-local", "https://169.254.169.254/latest/meta-data", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dns := &fakeDNS{hosts: map[string][]string{}}
			host, _ := hostOf(tt.url)
			if tt.addrs != nil {
				dns.hosts[host] = tt.addrs
			}
			dial := &dialRecorder{}
			r, err := New(Options{Resolver: dns, DialContext: dial.DialContext,
				Logger: discard()})
			if err != nil {
				t.Fatal(err)
			}
			c, err := r.Resolve(t.Context(), tt.url)
			if c != nil {
				t.Fatalf("resolved %+v", c)
			}
			wantKind(t, err, ErrAddressRefused)
			if got := dial.dialed(); len(got) != 0 {
				t.Errorf("connection attempted: %v", got)
			}
			// The refusal is remembered: no second lookup within ErrorTTL.
			_, err = r.Resolve(t.Context(), tt.url)
			wantKind(t, err, ErrAddressRefused)
			if n := len(dns.looked()); n > 1 {
				t.Errorf("%d lookups, want at most 1", n)
			}
		})
	}
}

// TestResolveDialsOnlyVettedAddress shows that a public host is connected
// to at exactly the address that was vetted (the test dialer connects to
// nothing).
func TestResolveDialsOnlyVettedAddress(t *testing.T) {
	t.Parallel()
	dns := &fakeDNS{hosts: map[string][]string{"app.example": {"93.184.215.14"}}}
	dial := &dialRecorder{}
	r, err := New(Options{Resolver: dns, DialContext: dial.DialContext, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Resolve(t.Context(), "https://app.example/c.json")
	wantKind(t, err, ErrFetch)
	if diff := cmp.Diff([]string{"93.184.215.14:443"}, dial.dialed()); diff != "" {
		t.Errorf("dials (-want +got):\n%s", diff)
	}
}

func TestResolveDomainLists(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		allow, deny  []string
		url          string
		wantResolved bool
	}{
		{"no lists", nil, nil, "/c.json", true},
		{"allowed exact", []string{"client.example.com"}, nil, "/c.json", true},
		{"allowed wildcard", []string{"*.example.com"}, nil, "/c.json", true},
		{"not allowed", []string{"claude.ai"}, nil, "/c.json", false},
		{"apex not in wildcard", []string{"*.client.example.com"}, nil, "/c.json", false},
		{"denied", nil, []string{"client.example.com"}, "/c.json", false},
		{"deny beats allow", []string{"*.example.com"}, []string{"client.example.com"},
			"/c.json", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newDocServer(t)
			id := s.url(tt.url)
			s.serveDoc(docFor(id, ""))
			r := s.resolver(func(o *Options) { o.AllowDomains, o.DenyDomains = tt.allow, tt.deny })
			c, err := r.Resolve(t.Context(), id)
			if got := r.Permitted(id); got != tt.wantResolved {
				t.Errorf("Permitted = %v, want %v", got, tt.wantResolved)
			}
			if tt.wantResolved {
				if err != nil || c == nil {
					t.Fatalf("Resolve: %v", err)
				}
				return
			}
			wantKind(t, err, ErrDomainRefused)
			if len(s.dns.looked()) != 0 || s.hits.Load() != 0 {
				t.Errorf("refused domain was looked up or fetched")
			}
		})
	}
}

func TestResolveSeeded(t *testing.T) {
	t.Parallel()
	const id = "https://claude.ai/oauth/mcp-oauth-client-metadata"
	seed := map[string]string{id: `{"client_id":"` + id + `","client_name":"Claude",` +
		`"redirect_uris":["https://claude.ai/api/mcp/auth_callback"]}`}
	dns, dial := &fakeDNS{}, &dialRecorder{}
	base := Options{Seed: seed, Resolver: dns, DialContext: dial.DialContext, Logger: discard(),
		AllowDomains: []string{"example.com"}}
	r, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Resolve(t.Context(), id)
	if err != nil || c.Name != "Claude" {
		t.Fatalf("Resolve = %+v, %v", c, err)
	}
	if !r.Permitted(id) || r.Permitted("https://claude.ai/other") {
		t.Error("Permitted: seeded id not permitted, or unseeded id of its host permitted")
	}
	if len(dns.looked())+len(dial.dialed()) != 0 {
		t.Error("a seeded document was fetched")
	}
	if diff := cmp.Diff([]string{id}, r.Seeded()); diff != "" {
		t.Errorf("Seeded (-want +got):\n%s", diff)
	}

	denied := base
	denied.DenyDomains = []string{"claude.ai"}
	r, err = New(denied)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(t.Context(), id); err == nil || r.Permitted(id) {
		t.Error("a denied domain's seeded document was used")
	}

	for name, bad := range map[string]map[string]string{
		"wrong client_id": {id: `{"client_id":"https://claude.ai/x","redirect_uris":["https://a.b/c"]}`},
		"invalid url":     {"https://claude.ai/": `{}`},
		"not json":        {id: `nope`},
	} {
		o := base
		o.Seed = bad
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted the seed", name)
		}
	}
}

func TestResolveInvalidURL(t *testing.T) {
	t.Parallel()
	dns := &fakeDNS{}
	r, err := New(Options{Resolver: dns, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Resolve(t.Context(), "https://app.example.com/")
	wantKind(t, err, ErrInvalidURL)
	if r.Permitted("client-123") {
		t.Error("a non-URL id is permitted")
	}
	if len(dns.looked()) != 0 {
		t.Error("an invalid URL was looked up")
	}
}

func TestResolveRemembersFailuresAndServesStale(t *testing.T) {
	t.Parallel()
	s := newDocServer(t)
	id := s.url("/c.json")
	s.serveDoc(docFor(id, ""), "Cache-Control", "max-age=60")
	r := s.resolver()
	if _, err := r.Resolve(t.Context(), id); err != nil {
		t.Fatal(err)
	}

	// The host fails: the expired document stands in, and the host is asked
	// again only after ErrorTTL.
	s.serve(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	s.clock.add(2 * time.Minute)
	for range 2 {
		if c, err := r.Resolve(t.Context(), id); err != nil || c.ID != id {
			t.Fatalf("stale Resolve = %v, %v", c, err)
		}
	}
	if got := s.hits.Load(); got != 2 {
		t.Errorf("fetches = %d, want 2", got)
	}

	// Past StaleIfError the failure shows, and is remembered.
	s.clock.add(DefaultStaleIfError)
	for range 2 {
		_, err := r.Resolve(t.Context(), id)
		wantKind(t, err, ErrFetch)
	}
	if got := s.hits.Load(); got != 3 {
		t.Errorf("fetches = %d, want 3", got)
	}

	// An invalid document never stands in for anything.
	s.clock.add(DefaultErrorTTL)
	s.serveDoc(`{"client_id":"x"}`)
	_, err := r.Resolve(t.Context(), id)
	wantKind(t, err, ErrInvalidDocument)
}

func TestResolveCacheIsBounded(t *testing.T) {
	t.Parallel()
	s := newDocServer(t)
	s.serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, docFor(s.url(r.URL.Path), ""))
	})
	r := s.resolver(func(o *Options) { o.CacheSize = 2 })
	for _, p := range []string{"/a", "/b", "/c", "/a"} {
		if _, err := r.Resolve(t.Context(), s.url(p)); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.cache.len(); n != 2 {
		t.Errorf("cache holds %d entries, want 2", n)
	}
	if got := s.hits.Load(); got != 4 {
		t.Errorf("fetches = %d, want 4 (/a was evicted)", got)
	}
}

func TestResolveCallerGivesUp(t *testing.T) {
	t.Parallel()
	s := newDocServer(t)
	release := make(chan struct{})
	id := s.url("/slow.json")
	s.serve(func(w http.ResponseWriter, _ *http.Request) {
		<-release
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, docFor(id, ""))
	})
	r := s.resolver()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := r.Resolve(ctx, id)
	wantKind(t, err, ErrFetch)
	close(release)
	// The detached fetch still completes and serves the next caller.
	if _, err := r.Resolve(t.Context(), id); err != nil {
		t.Fatalf("Resolve: %v", err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]Options{
		"negative timeout": {Timeout: -1},
		"min above max":    {MinTTL: time.Hour, MaxTTL: time.Minute},
		"bad allow":        {AllowDomains: []string{"https://x"}},
		"bad deny":         {DenyDomains: []string{""}},
		"negative bytes":   {MaxBytes: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

func TestTTLOf(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		hdr    http.Header
		want   time.Duration
		wantOK bool
	}{
		{"none", http.Header{}, 0, false},
		{"max-age", http.Header{"Cache-Control": {"max-age=120"}}, 2 * time.Minute, true},
		{"quoted", http.Header{"Cache-Control": {`max-age="120"`}}, 2 * time.Minute, true},
		{"two lines", http.Header{"Cache-Control": {"public", "MAX-AGE=5"}}, 5 * time.Second,
			true},
		{"garbage max-age", http.Header{"Cache-Control": {"max-age=soon"}}, 0, false},
		{"huge", http.Header{"Cache-Control": {"max-age=99999999999999999999999"}},
			365 * 24 * time.Hour, true},
		{"no-store wins", http.Header{"Cache-Control": {"max-age=60, no-store"}}, 0, true},
		{"bad expires", http.Header{"Expires": {"0"}}, 0, true},
		{"expires without date", http.Header{"Expires": {"Tue, 01 Sep 2026 12:01:00 GMT"}},
			time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := ttlOf(tt.hdr, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ttlOf = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func BenchmarkPermitted(b *testing.B) {
	r, err := New(Options{AllowDomains: []string{"*.example.com", "claude.ai"},
		DenyDomains: []string{"evil.example.com"}, Logger: discard()})
	if err != nil {
		b.Fatal(err)
	}
	id := "https://app.example.com/oauth/client.json"
	b.ReportAllocs()
	for b.Loop() {
		if !r.Permitted(id) {
			b.Fatal("not permitted")
		}
	}
}
