package oauth

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/authz/cimd"
	"github.com/mcp-authz/mcp-authz/internal/syncbuf"
)

// captureLogs returns a text logger at info level writing into a buffer.
func captureLogs() (*slog.Logger, *syncbuf.Buffer) {
	b := &syncbuf.Buffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo})), b
}

// logServer makes e's server log into a buffer, the way NewServer would
// have installed the logger (with the development mode handler when on).
func (e *testEnv) logServer() *syncbuf.Buffer {
	l, b := captureLogs()
	if e.srv.clients.dev {
		l = slog.New(&devModeHandler{inner: l.Handler(), isDev: e.srv.isDevClient})
	}
	e.srv.log = l
	return b
}

// fakeDNS answers host lookups from a table, for package cimd.
type fakeDNS map[string][]string

func (f fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	ips, ok := f[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	out := make([]netip.Addr, len(ips))
	for i, s := range ips {
		out[i] = netip.MustParseAddr(s)
	}
	return out, nil
}

// dialLog records connection attempts and connects to nothing.
type dialLog struct {
	mu       sync.Mutex
	attempts []string
}

func (d *dialLog) DialContext(_ context.Context, _, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.attempts = append(d.attempts, addr)
	return nil, fmt.Errorf("test dialer: not connecting to %s", addr)
}

func (d *dialLog) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.attempts)
}

// docHost is a TLS server publishing client id metadata documents at
// https://127.0.0.1:<port>/<name>.
type docHost struct {
	ts   *httptest.Server
	mu   sync.Mutex
	docs map[string]string
}

func newDocHost(t testing.TB) *docHost {
	t.Helper()
	h := &docHost{docs: map[string]string{}}
	h.ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		doc, ok := h.docs[r.URL.Path]
		h.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprint(w, doc)
	}))
	t.Cleanup(h.ts.Close)
	return h
}

// publish serves a document for the client id <host>/<path> with the given
// redirect URIs and returns the client id.
func (h *docHost) publish(path, name string, redirects ...string) string {
	id := h.ts.URL + path
	var quoted []string
	for _, r := range redirects {
		quoted = append(quoted, `"`+r+`"`)
	}
	h.put(path, `{"client_id":"`+id+`","client_name":"`+name+`","redirect_uris":[`+
		strings.Join(quoted, ",")+`],"grant_types":["authorization_code","refresh_token"],`+
		`"token_endpoint_auth_method":"none"}`)
	return id
}

func (h *docHost) put(path, doc string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.docs[path] = doc
}

// withDocHost lets the server fetch documents from h (a loopback address,
// with a test certificate).
func withDocHost(h *docHost) envOption {
	return func(c *Config) {
		pool := x509.NewCertPool()
		pool.AddCert(h.ts.Certificate())
		c.CIMD.AllowPrivate = true
		c.CIMD.RootCAs = pool
		c.CIMD.Logger = discard()
	}
}

// devCounter counts OnDevModeUse calls by place.
type devCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *devCounter) use(where string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = map[string]int{}
	}
	d.n[where]++
}

func (d *devCounter) get(where string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[where]
}

// authorizeStatus sends an authorization request without following
// redirects and returns the answer.
func (e *testEnv) authorizeStatus(params url.Values) *http.Response {
	e.t.Helper()
	return e.do(http.MethodGet, "/authorize?"+params.Encode(), nil,
		map[string]string{"Accept": "application/json"})
}

// decide runs an ext_authz decision for a token with e's server as the
// client lookup.
func (e *testEnv) decide(accessToken string) authz.Reason {
	e.t.Helper()
	d := authz.NewDecider(e.srv.cfg.Config, e.tokens, e.store, discard())
	d.SetClientLookup(e.srv)
	u, _ := url.Parse(testResource)
	return d.Check(context.Background(), &authz.Request{
		Method: http.MethodPost, Scheme: u.Scheme, Host: u.Host, Path: u.Path,
		Authorization: []string{"Bearer " + accessToken},
	}).Reason
}

// tokenForm posts a token request to srv directly (not through e's
// listener) and returns the status and JSON answer.
func tokenForm(t testing.TB, srv *Server, form url.Values, basicUser,
	basicPass string) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		r.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	return w.Code, decodeJSON(t, w.Result())
}

var _ cimd.HostResolver = fakeDNS(nil)
