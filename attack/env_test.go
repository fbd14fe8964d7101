package attack_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/authz/cimd"
	"github.com/mcp-authz/mcp-authz/authz/oauth"
	"github.com/mcp-authz/mcp-authz/envoy"
	"github.com/mcp-authz/mcp-authz/registry"
)

// The protected resources. Requests to them never leave the process: the
// ext_authz server is called directly with Envoy-shaped CheckRequests.
const (
	resMCP   = "https://mcp.example.com/mcp"
	resOther = "https://other.example.com/mcp"
	mcpHost  = "mcp.example.com"

	user     = "alice"
	password = "correct horse battery staple"

	appRedirect      = "https://app.example.com/cb"
	loopbackRedirect = "http://127.0.0.1/callback"
)

// outcome is what an attack achieved, as the attacker sees it: the HTTP
// status of the answer that decides the case and the OAuth error code (or,
// for ext_authz, the decision's reason; "" for a successful OAuth answer).
type outcome struct {
	Status int
	Code   string
}

func denied(status int, reason authz.Reason) outcome { return outcome{status, string(reason)} }
func oauthError(status int, code string) outcome     { return outcome{status, code} }

var (
	allowed     = outcome{http.StatusOK, string(authz.ReasonOK)}
	oauthOK     = outcome{http.StatusOK, ""}
	redirected  = func(code string) outcome { return outcome{http.StatusFound, code} }
	noRedirect  = oauthError(http.StatusBadRequest, "invalid_request")
	badToken    = func(r authz.Reason) outcome { return denied(http.StatusUnauthorized, r) }
	lacksScopes = denied(http.StatusForbidden, authz.ReasonInsufficientScope)
)

// env is the whole product in one process: a registry in t.TempDir, the
// signing keys and token service, the OAuth server behind an httptest
// server (the issuer), the decision and Envoy's ext_authz gRPC service in
// front of it. Client id metadata documents are resolved with a fake DNS
// resolver, and any connection attempt is recorded and refused.
type env struct {
	t       *testing.T
	issuer  string
	ts      *httptest.Server
	store   *registry.Store
	keys    *authz.Keys
	tokens  *authz.Tokens
	decider *authz.Decider
	ext     *envoy.AuthorizationServer
	httpExt http.Handler // the HTTP check (Envoy http_service, nginx, Caddy)

	dns   map[string][]netip.Addr
	mu    sync.Mutex
	dials []string // connection attempts of the document resolver
}

var userHash = sync.OnceValue(func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
})

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func config(issuer string) authz.Config {
	return authz.Config{
		Issuer: issuer,
		Resources: []authz.Resource{
			{
				URL:            resMCP,
				Scopes:         []string{"mcp:read", "mcp:write", "mcp:admin"},
				RequiredScopes: []string{"mcp:read"},
				Rules: []authz.ScopeRule{
					{Method: "tools/call", Tool: "delete_everything",
						Scopes: []string{"mcp:admin"}},
					{Method: "tools/call", Scopes: []string{"mcp:write"}},
				},
			},
			{URL: resOther, Scopes: []string{"mcp:read"}},
		},
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOptions(t, registry.Options{Logger: discard()})
}

// newEnvOptions is newEnv with the registry opened with opts.
func newEnvOptions(t *testing.T, opts registry.Options) *env {
	t.Helper()
	e := &env{t: t, dns: map[string][]netip.Addr{}}
	var handler http.Handler = http.NotFoundHandler()
	e.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(e.ts.Close)
	e.issuer = e.ts.URL

	var err error
	e.store, err = registry.Open(t.Context(), t.TempDir(), opts)
	if err != nil {
		t.Fatalf("opening registry: %v", err)
	}
	t.Cleanup(func() { _ = e.store.Close() })
	cfg := config(e.issuer)
	if e.keys, err = authz.NewKeys(t.Context(), e.store, discard()); err != nil {
		t.Fatalf("NewKeys: %v", err)
	}
	e.tokens = authz.NewTokens(cfg, e.keys)
	srv, err := oauth.NewServer(oauth.Config{
		Config: cfg,
		ClientSources: oauth.ClientSources{CIMD: cimd.Options{
			Resolver:    fakeResolver(e.dns),
			DialContext: e.dial,
			Timeout:     2 * time.Second,
			Logger:      discard(),
		}},
	}, e.store, e.keys, e.tokens, discard())
	if err != nil {
		t.Fatalf("oauth.NewServer: %v", err)
	}
	handler = srv
	e.decider = authz.NewDecider(cfg, e.tokens, e.store, discard())
	e.decider.SetClientLookup(srv)
	e.ext = envoy.NewAuthorizationServer(e.decider, discard())
	e.httpExt = envoy.NewHTTPHandler(e.decider, discard(), "/ext_authz")

	err = e.store.Update(t.Context(), func(tx *registry.Txn) error {
		return tx.PutUser(&registry.User{Name: user, PasswordHash: userHash()})
	})
	if err != nil {
		t.Fatalf("adding user: %v", err)
	}
	return e
}

// fakeResolver answers host lookups from a map and fails for other hosts;
// it never sends a query.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// dial records a connection attempt of the document resolver and refuses
// it: the suite connects to nothing.
func (e *env) dial(_ context.Context, _, addr string) (net.Conn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dials = append(e.dials, addr)
	return nil, errors.New("attack suite: connections are not allowed")
}

func (e *env) dialed() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.dials...)
}

// ---- OAuth client side ----

// client is a registered OAuth client.
type client struct {
	id, secret string
	redirects  []string
}

// register registers a client with the given metadata over HTTP and
// returns the answer's outcome and the client.
func (e *env) register(meta map[string]any) (outcome, client) {
	e.t.Helper()
	b, err := json.Marshal(meta)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.registerRaw(b)
}

func (e *env) registerRaw(body []byte) (outcome, client) {
	e.t.Helper()
	resp, got := e.post("/register", "application/json", strings.NewReader(string(body)))
	if resp.StatusCode != http.StatusCreated {
		return outcome{resp.StatusCode, str(got["error"])}, client{}
	}
	c := client{id: str(got["client_id"]), secret: str(got["client_secret"])}
	for _, u := range got["redirect_uris"].([]any) {
		c.redirects = append(c.redirects, u.(string))
	}
	return outcome{resp.StatusCode, ""}, c
}

// publicClient registers a public client with refresh tokens.
func (e *env) publicClient(redirects ...string) client {
	e.t.Helper()
	if len(redirects) == 0 {
		redirects = []string{appRedirect}
	}
	o, c := e.register(map[string]any{
		"client_name": "Attack Test", "redirect_uris": redirects,
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{"authorization_code", "refresh_token"},
	})
	if o.Status != http.StatusCreated {
		e.t.Fatalf("registering: %+v", o)
	}
	return c
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// post posts a body to the issuer and decodes a JSON answer (nil when the
// answer is not JSON).
func (e *env) post(path, ctype string, body io.Reader) (*http.Response, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), http.MethodPost, e.issuer+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp, m
}

// form posts a form to the issuer and returns the outcome and JSON answer.
func (e *env) form(path string, f url.Values) (outcome, map[string]any) {
	e.t.Helper()
	resp, got := e.post(path, "application/x-www-form-urlencoded",
		strings.NewReader(f.Encode()))
	return outcome{resp.StatusCode, str(got["error"])}, got
}

// pkce returns a verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authParams is a valid authorization request of c for the main resource.
func authParams(c client, redirect, challenge string) url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {c.id}, "redirect_uri": {redirect},
		"state": {"st-1"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
		"resource": {resMCP}, "scope": {"mcp:read"},
	}
}

// browser is a user agent with cookies that does not follow redirects.
func (e *env) browser() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
}

// get sends a GET to the issuer with the browser b and returns the answer
// with its body read.
func (e *env) get(b *http.Client, path string, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), http.MethodGet, e.issuer+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.Do(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var (
	formAction = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	formInput  = regexp.MustCompile(`<input [^>]*name="([^"]*)" value="([^"]*)"`)
)

// submit fills the page's form with fields and posts it with b.
func (e *env) submit(b *http.Client, page string, fields url.Values) *http.Response {
	e.t.Helper()
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		e.t.Fatalf("no form on page:\n%s", page)
	}
	action, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		e.t.Fatal(err)
	}
	base, _ := url.Parse(e.issuer + "/")
	f := url.Values{}
	for _, in := range formInput.FindAllStringSubmatch(page, -1) {
		f.Set(html.UnescapeString(in[1]), html.UnescapeString(in[2]))
	}
	for k, v := range fields {
		f[k] = v
	}
	resp, err := b.PostForm(base.ResolveReference(action).String(), f)
	if err != nil {
		e.t.Fatalf("posting form: %v", err)
	}
	return resp
}

// authorize runs the browser side of an authorization: the request, the
// login and the consent. It returns the final redirect's Location.
func (e *env) authorize(params url.Values) *url.URL {
	e.t.Helper()
	b := e.browser()
	resp, page := e.get(b, "/authorize?"+params.Encode())
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("authorize: status %d: %s", resp.StatusCode, page)
	}
	resp = e.submit(b, page, url.Values{"username": {user}, "password": {password}})
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		resp = e.submit(b, string(body), url.Values{"consent": {"allow"}})
		resp.Body.Close()
	}
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		e.t.Fatalf("consent: status %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	return loc
}

// code runs an authorization for c at redirect and returns the code and
// its verifier.
func (e *env) code(c client, redirect string) (code, verifier string) {
	e.t.Helper()
	verifier, challenge := pkce()
	loc := e.authorize(authParams(c, redirect, challenge))
	if code = loc.Query().Get("code"); code == "" {
		e.t.Fatalf("no code in %s", loc)
	}
	return code, verifier
}

// exchange redeems a code at the token endpoint.
func (e *env) exchange(c client, code, verifier, redirect string) (outcome, map[string]any) {
	e.t.Helper()
	return e.form("/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
		"client_id": {c.id}, "redirect_uri": {redirect}, "resource": {resMCP},
	})
}

// grant runs the whole flow for c and returns the token answer.
func (e *env) grant(c client) map[string]any {
	e.t.Helper()
	code, verifier := e.code(c, c.redirects[0])
	o, got := e.exchange(c, code, verifier, c.redirects[0])
	if o != oauthOK {
		e.t.Fatalf("token exchange: %+v %v", o, got)
	}
	return got
}

// refresh presents a refresh token as client c.
func (e *env) refresh(c client, rt string, extra ...string) (outcome, map[string]any) {
	e.t.Helper()
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
		"client_id": {c.id}}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	return e.form("/token", f)
}

// redirectOutcome is the outcome of an authorization answer: the status and
// the error sent to the client ("" with a code). It fails the test when the
// answer redirects anywhere but to want.
func (e *env) redirectOutcome(resp *http.Response, want string) outcome {
	e.t.Helper()
	raw := resp.Header.Get("Location")
	if raw == "" {
		return outcome{resp.StatusCode, "no redirect"}
	}
	if strings.ContainsAny(raw, "\r\n") {
		e.t.Errorf("Location %q holds CR or LF", raw)
	}
	loc, err := url.Parse(raw)
	if err != nil {
		e.t.Fatalf("Location %q: %v", raw, err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != want {
		e.t.Errorf("redirected to %s, want %s", got, want)
	}
	return outcome{resp.StatusCode, loc.Query().Get("error")}
}

// ---- tokens ----

// signingKey returns the registry's current signing key, as an attacker
// who stole nothing cannot, so that the suite can sign tokens that differ
// from real ones in one claim only.
func (e *env) signingKey() (*ecdsa.PrivateKey, string) {
	e.t.Helper()
	kid := e.keys.SigningKeyID()
	for _, k := range e.store.SigningKeys() {
		if k.ID != kid {
			continue
		}
		priv, err := x509.ParsePKCS8PrivateKey(k.PrivateKey)
		if err != nil {
			e.t.Fatalf("parsing signing key: %v", err)
		}
		return priv.(*ecdsa.PrivateKey), kid
	}
	e.t.Fatalf("signing key %q not in the registry", kid)
	return nil, ""
}

// claims are the claims of a valid access token of client id.
func (e *env) claims(id, scope string) map[string]any {
	now := time.Now().Unix()
	return map[string]any{
		"iss": e.issuer, "sub": user, "aud": resMCP, "client_id": id, "scope": scope,
		"jti": randomID(), "grant": randomID(), "iat": now, "exp": now + 3600,
	}
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// mint mints a token with the real token service for client id.
func (e *env) mint(id, scope string, edit func(*authz.AccessClaims)) string {
	e.t.Helper()
	c := authz.AccessClaims{Subject: user, ClientID: id, Audience: resMCP, Scope: scope,
		GrantID: randomID()}
	if edit != nil {
		edit(&c)
	}
	tok, _, err := e.tokens.Mint(c)
	if err != nil {
		e.t.Fatalf("Mint: %v", err)
	}
	return tok
}

// ---- ext_authz ----

// mcpCall is an MCP request as Envoy describes it to ext_authz.
type mcpCall struct {
	method  string   // HTTP method, POST when empty
	path    string   // /mcp when empty
	headers []string // name, value pairs; repeated names are kept apart in raw mode
	body    string
	raw     bool // encode_raw_headers: header_map instead of the headers map
	partial bool // the body was cut at max_request_bytes
}

// post is a POST of an MCP message with token.
func post(token, body string, hdr ...string) mcpCall {
	c := mcpCall{body: body, headers: hdr}
	if token != "" {
		c.headers = append([]string{"authorization", "Bearer " + token}, hdr...)
	}
	return c
}

// checkRequest shapes c the way Envoy sends it: lower-case header names
// with the pseudo-headers, duplicates joined with a comma in the headers
// map, or kept apart in header_map with encode_raw_headers.
func checkRequest(c mcpCall) *authv3.CheckRequest {
	method, path := c.method, c.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/mcp"
	}
	all := append([]string{":authority", mcpHost, ":method", method, ":path", path,
		":scheme", "https", "content-type", "application/json",
		"x-request-id", randomID()}, c.headers...)
	if c.body != "" {
		all = append(all, "x-envoy-auth-partial-body", map[bool]string{
			true: "true", false: "false"}[c.partial])
	}
	h := &authv3.AttributeContext_HttpRequest{
		Id: randomID(), Method: method, Path: path, Host: mcpHost, Scheme: "https",
		Protocol: "HTTP/1.1", Body: c.body, Size: int64(len(c.body)),
	}
	if c.raw {
		h.HeaderMap = &corev3.HeaderMap{}
		for i := 0; i+1 < len(all); i += 2 {
			h.HeaderMap.Headers = append(h.HeaderMap.Headers, &corev3.HeaderValue{
				Key: strings.ToLower(all[i]), RawValue: []byte(all[i+1])})
		}
	} else {
		h.Headers = map[string]string{}
		for i := 0; i+1 < len(all); i += 2 {
			k := strings.ToLower(all[i])
			if old, ok := h.Headers[k]; ok {
				h.Headers[k] = old + "," + all[i+1]
				continue
			}
			h.Headers[k] = all[i+1]
		}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: h},
	}}
}

// check asks the ext_authz service about c and returns the outcome and the
// answer.
func (e *env) check(c mcpCall) (outcome, *authv3.CheckResponse) {
	e.t.Helper()
	resp, err := e.ext.Check(e.t.Context(), checkRequest(c))
	if err != nil {
		e.t.Fatalf("Check returned an RPC error (fail-open risk): %v", err)
	}
	reason := resp.GetDynamicMetadata().GetFields()[envoy.MetaReason].GetStringValue()
	if resp.GetStatus().GetCode() == 0 {
		if resp.GetOkResponse() == nil {
			e.t.Errorf("allowed without an ok_response")
		}
		return outcome{http.StatusOK, reason}, resp
	}
	return outcome{int(resp.GetDeniedResponse().GetStatus().GetCode()), reason}, resp
}

// checkOutcome is check without the answer.
func (e *env) checkOutcome(c mcpCall) outcome {
	e.t.Helper()
	o, _ := e.check(c)
	return o
}

// challenge returns the WWW-Authenticate header of a denial.
func challenge(resp *authv3.CheckResponse) string {
	for _, h := range resp.GetDeniedResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "www-authenticate" {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

// rpc is a JSON-RPC request body.
func rpc(method, params string) string {
	if params == "" {
		return `{"jsonrpc":"2.0","id":1,"method":"` + method + `"}`
	}
	return `{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":` + params + `}`
}

// toolCall is a tools/call body for tool.
func toolCall(tool string) string {
	return rpc("tools/call", `{"name":"`+tool+`","arguments":{}}`)
}

// checkHTTP asks the HTTP check handler about c, as Envoy's http_service
// mode sends it (the path after the prefix, headers as the client sent
// them, repeated ones kept apart). An allowed request is reported with the
// reason ok: the HTTP answer does not carry it.
func (e *env) checkHTTP(c mcpCall) outcome {
	e.t.Helper()
	method, path := c.method, c.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/mcp"
	}
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req := httptest.NewRequestWithContext(e.t.Context(), method, "/ext_authz"+path, body)
	req.Host = mcpHost
	req.Header.Set("X-Forwarded-Proto", "https")
	for i := 0; i+1 < len(c.headers); i += 2 {
		req.Header.Add(c.headers[i], c.headers[i+1])
	}
	rec := httptest.NewRecorder()
	e.httpExt.ServeHTTP(rec, req)
	if rec.Code == http.StatusOK {
		return allowed
	}
	var got struct{ Reason string }
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	return outcome{rec.Code, got.Reason}
}
