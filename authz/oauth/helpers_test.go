package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/registry"
)

const (
	testResource = "http://localhost:8080/mcp"
	testUser     = "alice"
	testPassword = "wonderland"
)

// testEnv is an authorization server on a real registry in t.TempDir,
// served by an httptest server whose URL is the issuer.
type testEnv struct {
	t      testing.TB
	srv    *Server
	ts     *httptest.Server
	store  *registry.Store
	tokens *authz.Tokens
	issuer string
}

type envOption func(*Config)

func withResources(rs ...authz.Resource) envOption {
	return func(c *Config) { c.Resources = rs }
}

func withIssuerPath(p string) envOption {
	return func(c *Config) { c.Issuer += p }
}

var userHash = sync.OnceValue(func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
})

func newEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	ctx := context.Background()
	var handler http.Handler = http.NotFoundHandler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)

	store, err := registry.Open(ctx, t.TempDir(), registry.Options{Logger: discard()})
	if err != nil {
		t.Fatalf("opening registry: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	cfg := Config{Config: authz.Config{
		Issuer: ts.URL,
		Resources: []authz.Resource{{
			URL: testResource, Scopes: []string{"mcp:read", "mcp:write"},
			RequiredScopes: []string{"mcp:read"},
		}},
	}}
	// Every test client shares one address: rate limits are tested on
	// their own (ratelimit_test.go) and turned off elsewhere.
	cfg.RateLimits = RateLimits{Register: offLimit, Token: offLimit, Login: offLimit,
		Authorize: offLimit}
	for _, o := range opts {
		o(&cfg)
	}
	keys, err := authz.NewKeys(ctx, store, discard())
	if err != nil {
		t.Fatalf("NewKeys: %v", err)
	}
	tokens := authz.NewTokens(cfg.Config, keys)
	srv, err := NewServer(cfg, store, keys, tokens, discard())
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	handler = srv
	err = store.Update(ctx, func(tx *registry.Txn) error {
		return tx.PutUser(&registry.User{Name: testUser, PasswordHash: userHash()})
	})
	if err != nil {
		t.Fatalf("adding user: %v", err)
	}
	return &testEnv{t: t, srv: srv, ts: ts, store: store, tokens: tokens, issuer: cfg.Issuer}
}

// with returns a copy of e that reports to t, for use in sub-tests.
func (e *testEnv) with(t testing.TB) *testEnv {
	c := *e
	c.t = t
	return &c
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// do sends a request to the server directly and returns the recorded answer.
func (e *testEnv) do(method, target string, body io.Reader, hdr map[string]string) *http.Response {
	e.t.Helper()
	r := httptest.NewRequest(method, target, body)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	return w.Result()
}

// register registers a client and returns the answer's JSON.
func (e *testEnv) register(meta map[string]any) map[string]any {
	e.t.Helper()
	b, _ := json.Marshal(meta)
	resp := e.do(http.MethodPost, "/register", strings.NewReader(string(b)),
		map[string]string{"Content-Type": "application/json"})
	got := decodeJSON(e.t, resp)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("register: status %d: %v", resp.StatusCode, got)
	}
	return got
}

// publicClient registers a public client with refresh tokens.
func (e *testEnv) publicClient(redirect string) string {
	e.t.Helper()
	c := e.register(map[string]any{
		"client_name": "Test App", "redirect_uris": []string{redirect},
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{"authorization_code", "refresh_token"},
	})
	return c["client_id"].(string)
}

func decodeJSON(t testing.TB, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decoding %q: %v", b, err)
	}
	return m
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

// pkce returns a verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	verifier = randomToken(32)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// browser is a cookie-keeping HTTP client that does not follow redirects.
type browser struct {
	t testing.TB
	c *http.Client
}

func (e *testEnv) browser() *browser {
	e.t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &browser{t: e.t, c: &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

func (b *browser) get(u string) *http.Response {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	return resp
}

func (b *browser) post(u string, form url.Values) *http.Response {
	b.t.Helper()
	resp, err := b.c.PostForm(u, form)
	if err != nil {
		b.t.Fatalf("POST %s: %v", u, err)
	}
	return resp
}

var (
	formRe  = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	inputRe = regexp.MustCompile(`<input [^>]*name="([^"]*)" value="([^"]*)"`)
)

// parseForm extracts the page's single form the way the end-to-end tests do:
// its action and every input's name and value.
func parseForm(t testing.TB, base, page string) (string, url.Values) {
	t.Helper()
	forms := formRe.FindAllStringSubmatch(page, -1)
	if len(forms) != 1 {
		t.Fatalf("page has %d forms, want 1:\n%s", len(forms), page)
	}
	action, err := url.Parse(html.UnescapeString(forms[0][1]))
	if err != nil {
		t.Fatalf("form action: %v", err)
	}
	b, _ := url.Parse(base)
	fields := url.Values{}
	for _, m := range inputRe.FindAllStringSubmatch(page, -1) {
		fields.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return b.ResolveReference(action).String(), fields
}

// authParams returns a valid authorization request for a client.
func authParams(clientID, redirect, challenge string) url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"state": {"st-123"}, "code_challenge": {challenge},
		"code_challenge_method": {"S256"}, "resource": {testResource},
		"scope": {"mcp:read"},
	}
}

// loginToConsent starts an authorization in the browser, logs in, and
// returns the consent page's form.
func (e *testEnv) loginToConsent(b *browser, params url.Values) (string, url.Values) {
	e.t.Helper()
	resp := e.login(b, params)
	page := readBody(e.t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `value="allow"`) {
		e.t.Fatalf("login: status %d: %s", resp.StatusCode, page)
	}
	return parseForm(e.t, e.issuer, page)
}

// login starts an authorization in the browser and logs in.
func (e *testEnv) login(b *browser, params url.Values) *http.Response {
	e.t.Helper()
	resp := b.get(e.issuer + "/authorize?" + params.Encode())
	page := readBody(e.t, resp)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("authorize: status %d: %s", resp.StatusCode, page)
	}
	action, f := parseForm(e.t, e.issuer, page)
	f.Set("username", testUser)
	f.Set("password", testPassword)
	return b.post(action, f)
}

// authorize runs the whole browser flow, consenting when asked, and returns
// the code from the redirect.
func (e *testEnv) authorize(params url.Values) string {
	e.t.Helper()
	b := e.browser()
	resp := e.login(b, params)
	if resp.StatusCode == http.StatusOK {
		action, f := parseForm(e.t, e.issuer, readBody(e.t, resp))
		f.Set("consent", "allow")
		resp = b.post(action, f)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("consent: status %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	q := loc.Query()
	if q.Get("code") == "" {
		e.t.Fatalf("no code in %s", loc)
	}
	return q.Get("code")
}

// token posts a token request.
func (e *testEnv) token(form url.Values, basicUser, basicPass string) (*http.Response,
	map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost,
		e.issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("token: %v", err)
	}
	return resp, decodeJSON(e.t, resp)
}

// codeTokens runs the flow for a public client and exchanges the code.
func (e *testEnv) codeTokens(clientID, redirect string) map[string]any {
	e.t.Helper()
	verifier, challenge := pkce()
	code := e.authorize(authParams(clientID, redirect, challenge))
	resp, got := e.token(url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
		"client_id": {clientID}, "redirect_uri": {redirect}, "resource": {testResource},
	}, "", "")
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("token: status %d: %v", resp.StatusCode, got)
	}
	return got
}
