package oauth

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz/ratelimit"
	"github.com/mcp-authz/mcp-authz/registry"
)

var offLimit = ratelimit.Limit{Off: true}

// testPeer is the peer address of requests sent with testEnv.do
// (httptest.NewRequest's RemoteAddr).
var testPeer = netip.MustParsePrefix("192.0.2.1/32")

// hookCounter counts calls of the Config hooks.
type hookCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (h *hookCounter) add(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = map[string]int{}
	}
	h.counts[name]++
}

func (h *hookCounter) get(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[name]
}

func TestEndpointRateLimits(t *testing.T) {
	t.Parallel()
	var hooks hookCounter
	e := newEnv(t, withConfig(func(c *Config) {
		c.RateLimits.Register = ratelimit.Limit{PerMinute: 6, Burst: 2}
		c.RateLimits.Token = ratelimit.Limit{PerMinute: 6, Burst: 2}
		c.TrustedProxies = []netip.Prefix{testPeer}
		c.OnRateLimited = hooks.add
	}))
	frozen := time.Now()
	e.srv.now = func() time.Time { return frozen }
	reg := e.register(publicMeta(webRedirect)) // from the peer itself
	form := func(path string) func(client string) *http.Response {
		return func(client string) *http.Response {
			return e.do(http.MethodPost, path, strings.NewReader(url.Values{
				"client_id": {reg["client_id"].(string)}, "token": {"x"},
				"grant_type": {"refresh_token"}, "refresh_token": {"x"}}.Encode()),
				map[string]string{"Content-Type": "application/x-www-form-urlencoded",
					"X-Forwarded-For": client})
		}
	}
	tests := []struct {
		name  string
		limit string
		send  func(client string) *http.Response
	}{
		{"register", LimitRegister, func(client string) *http.Response {
			return e.do(http.MethodPost, "/register",
				strings.NewReader(`{"redirect_uris":["https://a.example/cb"]}`),
				map[string]string{"Content-Type": "application/json", "X-Forwarded-For": client})
		}},
		{"registration management", LimitRegister, func(client string) *http.Response {
			return e.do(http.MethodGet, reg["registration_client_uri"].(string), nil,
				map[string]string{"X-Forwarded-For": client,
					"Authorization": "Bearer " + reg["registration_access_token"].(string)})
		}},
		{"token", LimitToken, form("/token")},
		{"revoke", LimitToken, form("/revoke")},
		{"introspect", LimitToken, form("/introspect")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := "203.0.113." + strconv.Itoa(i+1)
			before := hooks.get(tt.limit)
			// A preflight is never counted.
			e.do(http.MethodOptions, "/token", nil, map[string]string{"X-Forwarded-For": client})
			for n := range 2 {
				if resp := tt.send(client); resp.StatusCode == http.StatusTooManyRequests {
					t.Fatalf("request %d within the burst refused", n+1)
				}
			}
			resp := tt.send(client)
			got := decodeJSON(t, resp)
			if resp.StatusCode != http.StatusTooManyRequests ||
				got["error"] != "temporarily_unavailable" {
				t.Fatalf("past the burst: %d %v, want 429 temporarily_unavailable",
					resp.StatusCode, got)
			}
			if ra := resp.Header.Get("Retry-After"); ra != "10" {
				t.Errorf("Retry-After = %q, want 10 (6 a minute)", ra)
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("429 without CORS: a browser client could not read it")
			}
			checkTokenHeaders(t, resp)
			if hooks.get(tt.limit) != before+1 {
				t.Errorf("OnRateLimited(%s) not called once", tt.limit)
			}
			// Another address is not affected.
			if resp := tt.send("198.51.100." + strconv.Itoa(i+1)); resp.StatusCode == 429 {
				t.Errorf("another client address was limited")
			}
		})
	}
	t.Run("refill", func(t *testing.T) {
		frozen = frozen.Add(10 * time.Second)
		if resp := form("/token")("203.0.113.3"); resp.StatusCode == 429 {
			t.Errorf("refused after the refill time")
		}
	})
}

func TestForwardedForIgnoredFromUntrustedPeer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) {
		c.RateLimits.Register = ratelimit.Limit{PerMinute: 1, Burst: 1}
	}))
	send := func(xff string) int {
		return e.do(http.MethodPost, "/register",
			strings.NewReader(`{"redirect_uris":["https://a.example/cb"]}`),
			map[string]string{"Content-Type": "application/json", "X-Forwarded-For": xff},
		).StatusCode
	}
	if st := send("203.0.113.1"); st != 201 {
		t.Fatalf("first registration: %d", st)
	}
	if st := send("203.0.113.2"); st != 429 {
		t.Errorf("a spoofed X-Forwarded-For escaped the limit: %d", st)
	}
}

// browserFrom is a browser whose requests come, through a trusted proxy on
// loopback, from addr.
func (e *testEnv) browserFrom(addr string) *browser {
	b := e.browser()
	b.c.Transport = forwardedFor{addr}
	return b
}

type forwardedFor struct{ addr string }

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.addr)
	return http.DefaultTransport.RoundTrip(r)
}

// loginAs opens an authorization page in b and signs in; it returns the
// answer to the sign-in form.
func (e *testEnv) loginAs(b *browser, client, user, password string) *http.Response {
	e.t.Helper()
	_, challenge := pkce()
	resp := b.get(e.issuer + "/authorize?" + authParams(client, webRedirect, challenge).Encode())
	action, f := parseForm(e.t, e.issuer, readBody(e.t, resp))
	f.Set("username", user)
	f.Set("password", password)
	return b.post(action, f)
}

func TestLoginLockout(t *testing.T) {
	t.Parallel()
	var hooks hookCounter
	e := newEnv(t, withConfig(func(c *Config) {
		c.RateLimits.Login = ratelimit.Limit{PerMinute: 600, Burst: 100}
		c.TrustedProxies = ratelimit.LoopbackPrefixes
		c.OnRateLimited = hooks.add
	}))
	err := e.store.Update(t.Context(), func(tx *registry.Txn) error {
		return tx.PutUser(&registry.User{Name: "bob", PasswordHash: userHash()})
	})
	if err != nil {
		t.Fatal(err)
	}
	client := e.publicClient(webRedirect)
	attacker := e.browserFrom("203.0.113.66")
	for i := range ratelimit.DefaultLockoutFailures {
		resp := e.loginAs(attacker, client, testUser, "wrong")
		if page := readBody(t, resp); resp.StatusCode != http.StatusOK ||
			!strings.Contains(page, "Wrong user name") {
			t.Fatalf("failure %d: %d\n%s", i+1, resp.StatusCode, page)
		}
	}

	// The right password from the attacker's address is not even tried.
	resp := e.loginAs(attacker, client, testUser, testPassword)
	page := readBody(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests ||
		!strings.Contains(page, "Too many failed sign-in attempts") {
		t.Fatalf("locked user: %d\n%s", resp.StatusCode, page)
	}
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 800 || ra > 900 {
		t.Errorf("Retry-After = %q, want about 15 minutes", resp.Header.Get("Retry-After"))
	}
	checkPageHeaders(t, resp)
	if _, f := parseForm(t, e.issuer, page); f.Get("client_id") != client {
		t.Errorf("the locked page lost its authorization request")
	}
	if hooks.get(LimitLockout) != 1 {
		t.Errorf("OnRateLimited(lockout) called %d times", hooks.get(LimitLockout))
	}

	// The same user elsewhere, and another user here, sign in.
	for _, tc := range []struct{ name, addr, user string }{
		{"same user elsewhere", "198.51.100.1", testUser},
		{"other user at the attacker's address", "203.0.113.66", "bob"},
	} {
		resp := e.loginAs(e.browserFrom(tc.addr), client, tc.user, testPassword)
		if page := readBody(t, resp); resp.StatusCode != http.StatusOK ||
			!strings.Contains(page, `value="allow"`) {
			t.Errorf("%s: %d\n%s", tc.name, resp.StatusCode, page)
		}
	}

	// The consent pages share the lockout.
	b := attacker
	resp = b.get(e.issuer + "/consents")
	action, f := consentsForm(t, e.issuer, readBody(t, resp), "login")
	f.Set("username", testUser)
	f.Set("password", testPassword)
	if resp := b.post(action, f); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("consents sign-in of a locked user: %d", resp.StatusCode)
	}
}

func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) {
		c.RateLimits.Login = ratelimit.Limit{PerMinute: 1, Burst: 2}
	}))
	client := e.publicClient(webRedirect)
	b := e.browser()
	for i := range 2 {
		if resp := e.loginAs(b, client, "nobody", "x"); resp.StatusCode != http.StatusOK {
			t.Fatalf("attempt %d: %d", i+1, resp.StatusCode)
		}
	}
	resp := e.loginAs(b, client, testUser, testPassword)
	page := readBody(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests ||
		!strings.Contains(page, "Too many sign-in attempts from your address") ||
		resp.Header.Get("Retry-After") == "" {
		t.Errorf("past the login limit: %d %v\n%s", resp.StatusCode, resp.Header, page)
	}
}

func TestTokenIssuedHook(t *testing.T) {
	t.Parallel()
	var hooks hookCounter
	e := newEnv(t, withConfig(func(c *Config) { c.OnTokenIssued = hooks.add }))
	client := e.publicClient(webRedirect)
	tok := e.codeTokens(client, webRedirect)
	e.token(refreshForm(client, tok["refresh_token"].(string)), "", "")
	e.token(refreshForm(client, "bogus"), "", "")
	if a, r := hooks.get(grantAuthorizationCode), hooks.get(grantRefreshToken); a != 1 || r != 1 {
		t.Errorf("OnTokenIssued: %d authorization_code, %d refresh_token; want 1 and 1", a, r)
	}
}

func TestRateLimitsConfig(t *testing.T) {
	t.Parallel()
	d := RateLimits{}.withDefaults()
	if d.Register != DefaultRegisterLimit || d.Token != DefaultTokenLimit ||
		d.Login != DefaultLoginLimit || d.Authorize != DefaultAuthorizeLimit ||
		d.MaxKeys != ratelimit.DefaultMaxKeys ||
		d.Lockout.Failures != ratelimit.DefaultLockoutFailures {
		t.Errorf("defaults %+v", d)
	}
	if err := d.validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	off := RateLimits{Register: offLimit}.withDefaults()
	if !off.Register.Off || off.validate() != nil {
		t.Errorf("an Off limit was replaced or refused: %+v", off.Register)
	}
	for name, l := range map[string]RateLimits{
		"no burst":      {Token: ratelimit.Limit{PerMinute: 5}},
		"negative rate": {Login: ratelimit.Limit{PerMinute: -1, Burst: 1}},
		"negative keys": {MaxKeys: -1},
		"bad lockout":   {Lockout: ratelimit.LockoutPolicy{Failures: -1}},
	} {
		if l.withDefaults().validate() == nil {
			t.Errorf("%s: validate accepted %+v", name, l)
		}
	}
}

// TestForwardedForWarning checks that an X-Forwarded-For header from a peer
// outside the trusted proxies is reported, once per peer, naming the peer
// and the setting to change; and that a trusted proxy's is not.
func TestForwardedForWarning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		trusted  []netip.Prefix
		peer     string
		xff      string
		wantWarn bool
	}{
		{"no trusted proxies", nil, "192.0.2.1:1234", "203.0.113.7", true},
		{"peer outside the trusted proxies", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			"192.0.2.1:1234", "203.0.113.7", true},
		{"ipv6 peer outside", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			"[2001:db8::5]:443", "203.0.113.7", true},
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			"10.1.2.3:1234", "203.0.113.7", false},
		{"no header", nil, "192.0.2.1:1234", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withConfig(func(c *Config) { c.TrustedProxies = tt.trusted }))
			logs := e.logServer()
			for range 3 {
				r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(""))
				r.RemoteAddr = tt.peer
				if tt.xff != "" {
					r.Header.Set("X-Forwarded-For", tt.xff)
				}
				e.srv.ServeHTTP(httptest.NewRecorder(), r)
			}
			peer := netip.MustParseAddrPort(tt.peer).Addr().String()
			got := logs.Lines("X-Forwarded-For ignored")
			switch {
			case !tt.wantWarn && len(got) != 0:
				t.Errorf("warned: %q", got)
			case tt.wantWarn && len(got) != 1:
				t.Errorf("want one warning, got %q", got)
			case tt.wantWarn && (!strings.Contains(got[0], "peer="+peer) ||
				!strings.Contains(got[0], "--trusted-proxies") ||
				!strings.Contains(got[0], "MCP_AUTHZ_TRUSTED_PROXIES")):
				t.Errorf("warning %q does not name the peer %s and the setting", got[0], peer)
			}
		})
	}
}

// TestForwardedForWarningBounded checks that clients sending their own
// X-Forwarded-For headers cannot flood the log with warnings.
func TestForwardedForWarningBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	logs := e.logServer()
	for i := range 100 {
		r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(""))
		r.RemoteAddr = netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).String() + ":1"
		r.Header.Set("X-Forwarded-For", "203.0.113.7")
		e.srv.ServeHTTP(httptest.NewRecorder(), r)
	}
	if got := len(logs.Lines("X-Forwarded-For ignored")); got != maxForwardWarnings {
		t.Errorf("%d warnings, want %d", got, maxForwardWarnings)
	}
}

func TestAuthorizeRateLimit(t *testing.T) {
	t.Parallel()
	var hooks hookCounter
	e := newEnv(t, withConfig(func(c *Config) {
		c.RateLimits.Authorize = ratelimit.Limit{PerMinute: 6, Burst: 2}
		c.TrustedProxies = ratelimit.LoopbackPrefixes
		c.OnRateLimited = hooks.add
	}))
	client := e.publicClient(webRedirect)
	_, challenge := pkce()
	authorizeURL := e.issuer + "/authorize?" + authParams(client, webRedirect, challenge).Encode()
	b := e.browserFrom("203.0.113.9")

	resp := b.get(authorizeURL)
	action, f := parseForm(t, e.issuer, readBody(t, resp))
	// Requests for unknown clients count too: the limit comes first.
	b.get(e.issuer + "/authorize?client_id=nope").Body.Close()
	resp = b.get(authorizeURL)
	page := readBody(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests ||
		!strings.Contains(page, "temporarily_unavailable") ||
		resp.Header.Get("Retry-After") != "10" || resp.Header.Get("Location") != "" {
		t.Fatalf("past the burst: %d %v\n%s", resp.StatusCode, resp.Header, page)
	}
	checkPageHeaders(t, resp)
	if hooks.get(LimitAuthorize) != 1 {
		t.Errorf("OnRateLimited(authorize) called %d times", hooks.get(LimitAuthorize))
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, authorizeURL, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeJSON(t, resp); resp.StatusCode != http.StatusTooManyRequests ||
		got["error"] != "temporarily_unavailable" {
		t.Errorf("JSON past the burst: %d %v", resp.StatusCode, got)
	}

	// The page already shown can still be answered.
	f.Set("username", testUser)
	f.Set("password", testPassword)
	resp = b.post(action, f)
	if page := readBody(t, resp); resp.StatusCode != http.StatusOK ||
		!strings.Contains(page, `value="allow"`) {
		t.Errorf("login while the address is limited: %d\n%s", resp.StatusCode, page)
	}
	if resp := e.browserFrom("198.51.100.9").get(authorizeURL); resp.StatusCode != 200 {
		t.Errorf("another client address was limited: %d", resp.StatusCode)
	}
}
