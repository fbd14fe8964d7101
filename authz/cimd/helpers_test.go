package cimd

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDNS answers host lookups from a table and records them.
type fakeDNS struct {
	mu      sync.Mutex
	hosts   map[string][]string
	lookups []string
}

func (f *fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups = append(f.lookups, host)
	ips, ok := f.hosts[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	out := make([]netip.Addr, len(ips))
	for i, s := range ips {
		out[i] = netip.MustParseAddr(s)
	}
	return out, nil
}

func (f *fakeDNS) looked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lookups...)
}

// dialRecorder records every connection attempt. With connect false it
// connects to nothing and fails every attempt.
type dialRecorder struct {
	mu       sync.Mutex
	attempts []string
	connect  bool
}

func (d *dialRecorder) DialContext(ctx context.Context, network, addr string) (net.Conn,
	error) {
	d.mu.Lock()
	d.attempts = append(d.attempts, addr)
	d.mu.Unlock()
	if !d.connect {
		return nil, fmt.Errorf("test dialer: refusing to connect to %s", addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func (d *dialRecorder) dialed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.attempts...)
}

// testClock is a settable clock.
type testClock struct{ ns atomic.Int64 }

func newClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// docServer is a TLS server for client metadata documents, reachable as
// client.example.com (the test certificate covers *.example.com) through
// the fake DNS, with a resolver trusting its certificate.
type docServer struct {
	t       *testing.T
	ts      *httptest.Server
	port    string
	hits    atomic.Int64
	dns     *fakeDNS
	dial    *dialRecorder
	clock   *testClock
	mu      sync.Mutex
	handler http.HandlerFunc
}

func newDocServer(t *testing.T) *docServer {
	t.Helper()
	s := &docServer{t: t, clock: newClock(), dial: &dialRecorder{connect: true}}
	s.ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter,
		r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		h := s.handler
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(s.ts.Close)
	u, _ := url.Parse(s.ts.URL)
	s.port = u.Port()
	s.dns = &fakeDNS{hosts: map[string][]string{
		"client.example.com": {"127.0.0.1"}, "other.example.com": {"127.0.0.1"},
	}}
	return s
}

// url returns https://client.example.com:<port><path>.
func (s *docServer) url(path string) string {
	return "https://client.example.com:" + s.port + path
}

// serve sets the handler.
func (s *docServer) serve(h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = h
}

// serveDoc answers every request with doc as JSON and the given headers.
func (s *docServer) serveDoc(doc string, hdr ...string) {
	s.serve(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		_, _ = w.Write([]byte(doc))
	})
}

// options returns resolver options that reach the server.
func (s *docServer) options() Options {
	pool := x509.NewCertPool()
	pool.AddCert(s.ts.Certificate())
	return Options{
		AllowPrivate: true,
		Resolver:     s.dns,
		DialContext:  s.dial.DialContext,
		RootCAs:      pool,
		Logger:       discard(),
		Now:          s.clock.now,
	}
}

func (s *docServer) resolver(mod ...func(*Options)) *Resolver {
	s.t.Helper()
	o := s.options()
	for _, m := range mod {
		m(&o)
	}
	r, err := New(o)
	if err != nil {
		s.t.Fatalf("New: %v", err)
	}
	return r
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// docFor returns a minimal valid document for id.
func docFor(id string, extra string) string {
	return `{"client_id":"` + id + `","client_name":"Test Client",` +
		`"redirect_uris":["http://127.0.0.1/callback","https://app.example.com/cb"],` +
		`"grant_types":["authorization_code","refresh_token"]` + extra + `}`
}

// wantKind fails unless err is an *Error of kind want.
func wantKind(t *testing.T, err, want error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, want) {
		t.Fatalf("error %v, want kind %v", err, want)
	}
	return e
}
