package authz

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mcp-authz/mcp-authz/internal/jwstest"
)

const (
	testMeta      = "http://localhost:8080/.well-known/oauth-protected-resource/mcp"
	testChallenge = `Bearer resource_metadata="` + testMeta + `", scope="mcp:tools"`
)

func mcpRequest(auth ...string) *Request {
	return &Request{DecisionID: "d1", Method: "POST", Scheme: "http",
		Host: "localhost:8080", Path: "/mcp", Authorization: auth}
}

func bearer(tok string) string { return "Bearer " + tok }

func invalidToken(descr string) string {
	return testChallenge + `, error="invalid_token", error_description="` + descr + `"`
}

func TestCheck(t *testing.T) {
	e := newTestEnv(t)
	e.putClient(t, "client-1", false)
	e.putClient(t, "client-revoked", true)
	now := e.clock.now()
	real := e.signer(t)
	sign := jwstest.ES256(real.priv)
	hdr := func(kv ...string) map[string]any {
		h := map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": real.id}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	claims := func(kv ...any) map[string]any {
		c := e.validClaims()
		for i := 0; i < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	pubDER, err := x509.MarshalPKIXPublicKey(real.pub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	valid, _ := e.mint(t, nil)
	mint := func(edit func(*AccessClaims)) string {
		tok, _ := e.mint(t, edit)
		return tok
	}
	revokedJTI := mint(func(c *AccessClaims) { c.JTI = "revoked-jti" })
	e.revoke(t, "jti:revoked-jti")
	revokedGrant := mint(func(c *AccessClaims) { c.GrantID = "revoked-grant" })
	e.revoke(t, "grant:revoked-grant")

	allow := &Decision{Allow: true, Reason: ReasonOK, Status: 200, ClientID: "client-1",
		Subject: "alice", Scope: "mcp:tools", Resource: testResource}
	deny := func(r Reason, status int, challenge string) *Decision {
		return &Decision{Reason: r, Status: status, WWWAuthenticate: challenge,
			Resource: testResource}
	}
	tests := []struct {
		name string
		ctx  context.Context
		req  *Request
		want *Decision
	}{
		{"valid", nil, mcpRequest(bearer(valid)), allow},
		{"lower-case scheme and extra spaces", nil,
			mcpRequest("  bearer   " + valid + " "), allow},
		{"no authorization", nil, mcpRequest(),
			deny(ReasonNoToken, 401, testChallenge)},
		{"empty authorization", nil, mcpRequest(""),
			deny(ReasonNoToken, 401, testChallenge)},
		{"basic scheme", nil, mcpRequest("Basic dXNlcjpwdw=="),
			deny(ReasonNoToken, 401, testChallenge)},
		{"bearer without token", nil, mcpRequest("Bearer"),
			deny(ReasonMalformed, 401, invalidToken("the access token is malformed"))},
		{"bearer with two words", nil, mcpRequest("Bearer a b"),
			deny(ReasonMalformed, 401, invalidToken("the access token is malformed"))},
		{"not a JWT", nil, mcpRequest("Bearer abc"),
			deny(ReasonMalformed, 401, invalidToken("the access token is malformed"))},
		{"two authorization values", nil, mcpRequest(bearer(valid), bearer(valid)),
			deny(ReasonMultipleTokens, 400, testChallenge+`, error="invalid_request", `+
				`error_description="the request carries more than one authorization"`)},
		{"comma-joined pair", nil, mcpRequest(bearer(valid) + ", " + bearer(valid)),
			deny(ReasonMultipleTokens, 400, testChallenge+`, error="invalid_request", `+
				`error_description="the request carries more than one authorization"`)},
		{"bad signature", nil,
			mcpRequest(bearer(jwstest.Craft(t, hdr(), claims(), jwstest.ES256(otherKey(t))))),
			deny(ReasonBadSignature, 401, invalidToken("the access token signature is invalid"))},
		{"alg none", nil, mcpRequest(bearer(jwstest.Craft(t, hdr("alg", "none"), claims(), nil))),
			deny(ReasonBadSignature, 401, invalidToken("the access token signature is invalid"))},
		{"HS256 with the public key", nil,
			mcpRequest(bearer(jwstest.Craft(t, hdr("alg", "HS256"), claims(), jwstest.HS256(pubPEM)))),
			deny(ReasonBadSignature, 401, invalidToken("the access token signature is invalid"))},
		{"unknown kid", nil,
			mcpRequest(bearer(jwstest.Craft(t, hdr("kid", "zzz"), claims(), jwstest.ES256(otherKey(t))))),
			deny(ReasonBadSignature, 401, invalidToken("the access token signature is invalid"))},
		{"wrong typ", nil, mcpRequest(bearer(jwstest.Craft(t, hdr("typ", "JWT"), claims(), sign))),
			deny(ReasonWrongType, 401, invalidToken("the token is not an access token"))},
		{"expired", nil, mcpRequest(bearer(mint(func(c *AccessClaims) {
			c.IssuedAt, c.ExpiresAt = now.Add(-2*time.Hour), now.Add(-time.Hour)
		}))), deny(ReasonExpired, 401, invalidToken("the access token expired"))},
		{"not yet valid", nil, mcpRequest(bearer(mint(func(c *AccessClaims) {
			c.NotBefore = now.Add(time.Hour)
		}))), deny(ReasonNotYetValid, 401, invalidToken("the access token is not yet valid"))},
		{"wrong issuer", nil,
			mcpRequest(bearer(jwstest.Craft(t, hdr(), claims("iss", "http://evil"), sign))),
			deny(ReasonWrongIssuer, 401, invalidToken("the access token is from another issuer"))},
		{"wrong audience", nil, mcpRequest(bearer(mint(func(c *AccessClaims) {
			c.Audience = testRoot
		}))), deny(ReasonWrongAudience, 401,
			invalidToken("the access token is not for this resource"))},
		{"unknown client", nil, mcpRequest(bearer(mint(func(c *AccessClaims) {
			c.ClientID = "ghost"
		}))), deny(ReasonUnknownClient, 401, invalidToken("the client is not registered"))},
		{"revoked client", nil, mcpRequest(bearer(mint(func(c *AccessClaims) {
			c.ClientID = "client-revoked"
		}))), deny(ReasonRevokedClient, 401, invalidToken("the client has been revoked"))},
		{"revoked jti", nil, mcpRequest(bearer(revokedJTI)),
			deny(ReasonRevokedToken, 401, invalidToken("the access token has been revoked"))},
		{"revoked grant", nil, mcpRequest(bearer(revokedGrant)),
			deny(ReasonRevokedToken, 401, invalidToken("the access token has been revoked"))},
		{"insufficient scope", nil, mcpRequest(bearer(mint(func(c *AccessClaims) {
			c.Scope = "mcp:admin mcp:toolsx"
		}))), deny(ReasonInsufficientScope, 403, `Bearer error="insufficient_scope", `+
			`scope="mcp:tools", resource_metadata="`+testMeta+`", `+
			`error_description="the access token lacks a required scope"`)},
		{"deadline passed", canceled(t), mcpRequest(bearer(valid)),
			&Decision{Reason: ReasonDeadline, Status: 503}},
		{"unknown resource", nil,
			&Request{Host: "elsewhere:8080", Path: "/mcp", Authorization: []string{valid}},
			&Decision{Reason: ReasonUnknownResource, Status: 403}},
		{"nil request", nil, nil, &Decision{Reason: ReasonUnknownResource, Status: 403}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			got := e.decider.Check(ctx, tt.req)
			checkBody(t, got)
			got.Body = nil
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
		})
	}
}

func canceled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

// checkBody checks the JSON body of a denial: error, description, reason.
func checkBody(t *testing.T, d *Decision) {
	t.Helper()
	if d.Allow {
		if d.Body != nil {
			t.Errorf("allow carries a body %s", d.Body)
		}
		return
	}
	var body map[string]string
	if err := json.Unmarshal(d.Body, &body); err != nil {
		t.Fatalf("deny body %q: %v", d.Body, err)
	}
	if body["reason"] != string(d.Reason) || body["error"] == "" ||
		body["error_description"] == "" || len(body) != 3 {
		t.Errorf("deny body %s: want error, error_description and reason %q", d.Body, d.Reason)
	}
}

func TestCheckResourceMatching(t *testing.T) {
	cfg := testConfig()
	cfg.Resources = append(cfg.Resources, Resource{URL: "http://[::1]:8080/v6"},
		Resource{URL: "https://mcp.example.com/slash/"})
	e := newTestEnvConfig(t, cfg)
	const team = "https://mcp.example.com/team/a"
	tests := []struct {
		name, host, path string
		ext              map[string]string
		want             string // resource URL, "" for none
	}{
		{"exact", "localhost:8080", "/mcp", nil, testResource},
		{"host case", "LocalHost:8080", "/mcp", nil, testResource},
		{"query ignored", "localhost:8080", "/mcp?session=1&a=/b", nil, testResource},
		{"trailing slash", "localhost:8080", "/mcp/", nil, testResource},
		{"under the path", "localhost:8080", "/mcp/sub/x", nil, testResource},
		{"path prefix is not a segment", "localhost:8080", "/mcpx", nil, ""},
		{"path case", "localhost:8080", "/MCP", nil, ""},
		{"dot segments out", "localhost:8080", "/mcp/../admin", nil, ""},
		{"encoded dot segments out", "localhost:8080", "/mcp/%2E%2e/admin", nil, ""},
		{"encoded slash out", "localhost:8080", "/mcp%2f..%2fadmin", nil, ""},
		{"backslash out", "localhost:8080", `/mcp\..\admin`, nil, ""},
		{"dot segments in", "localhost:8080", "/x/../mcp/./y", nil, testResource},
		{"double slash", "localhost:8080", "//mcp", nil, testResource},
		{"other port", "localhost:8081", "/mcp", nil, ""},
		{"missing non-default port", "localhost", "/mcp", nil, ""},
		{"no leading slash", "localhost:8080", "mcp", nil, ""},
		{"empty host", "", "/mcp", nil, ""},
		{"origin resource", "mcp.example.com", "/anything", nil, testRoot},
		{"origin resource root", "mcp.example.com", "/", nil, testRoot},
		{"default https port", "mcp.example.com:443", "/x", nil, testRoot},
		{"http port on https resource", "mcp.example.com:80", "/x", nil, ""},
		{"trailing dot host", "mcp.example.com.", "/x", nil, testRoot},
		{"longest path wins", "mcp.example.com", "/team/a/tools", nil, team},
		{"longest path exact", "mcp.example.com", "/team/a", nil, team},
		{"sibling path", "mcp.example.com", "/team/ab", nil, testRoot},
		{"escape longest path", "mcp.example.com", "/team/a/../b", nil, testRoot},
		{"resource with trailing slash", "mcp.example.com", "/slash",
			nil, "https://mcp.example.com/slash/"},
		{"ipv6", "[::1]:8080", "/v6/x", nil, "http://[::1]:8080/v6"},
		{"ipv6 wrong port", "[::1]", "/v6", nil, ""},
		{"extension names resource", "elsewhere", "/nope",
			map[string]string{"resource": testRoot + "/"}, testRoot},
		{"extension canonicalised", "elsewhere", "/",
			map[string]string{"resource": "HTTPS://MCP.example.com:443/team/a"}, team},
		{"extension unknown", "localhost:8080", "/mcp",
			map[string]string{"resource": "http://localhost:8080/other"}, ""},
		{"other extensions ignored", "localhost:8080", "/mcp",
			map[string]string{"tenant": "x"}, testResource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.decider.Check(t.Context(), &Request{Host: tt.host, Path: tt.path,
				ContextExtensions: tt.ext})
			wantReason := ReasonNoToken
			if tt.want == "" {
				wantReason = ReasonUnknownResource
			}
			if got.Resource != tt.want || got.Reason != wantReason {
				t.Errorf("Check = %q, %q; want %q, %q",
					got.Resource, got.Reason, tt.want, wantReason)
			}
		})
	}
}

func TestCheckChallengeOfOriginResource(t *testing.T) {
	e := newTestEnv(t)
	got := e.decider.Check(t.Context(), &Request{Host: "mcp.example.com", Path: "/"})
	want := `Bearer resource_metadata="https://mcp.example.com/.well-known/` +
		`oauth-protected-resource"`
	if got.WWWAuthenticate != want {
		t.Errorf("challenge = %s, want %s", got.WWWAuthenticate, want)
	}
}

// TestCacheDoesNotHideChanges allows a token (so it is cached), changes the
// registry or the clock, and checks that the next decision sees the change.
func TestCacheDoesNotHideChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, e *testEnv, c AccessClaims)
		want   Reason
	}{
		{"jti revoked", func(t *testing.T, e *testEnv, c AccessClaims) {
			e.revoke(t, "jti:"+c.JTI)
		}, ReasonRevokedToken},
		{"grant revoked", func(t *testing.T, e *testEnv, c AccessClaims) {
			e.revoke(t, "grant:"+c.GrantID)
		}, ReasonRevokedToken},
		{"client revoked", func(t *testing.T, e *testEnv, c AccessClaims) {
			e.putClient(t, c.ClientID, true)
		}, ReasonRevokedClient},
		{"token expired", func(t *testing.T, e *testEnv, c AccessClaims) {
			e.clock.set(c.ExpiresAt.Add(DefaultLeeway))
		}, ReasonExpired},
		{"signing key retired", func(t *testing.T, e *testEnv, c AccessClaims) {
			if err := e.keys.Rotate(t.Context(), time.Minute); err != nil {
				t.Fatal(err)
			}
			e.clock.add(time.Minute)
		}, ReasonBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.putClient(t, "client-1", false)
			tok, c := e.mint(t, nil)
			for i := range 2 {
				if d := e.decider.Check(t.Context(), mcpRequest(bearer(tok))); !d.Allow {
					t.Fatalf("check %d before the change: %s", i, d.Reason)
				}
			}
			if n := e.decider.cache.len(); n != 1 {
				t.Fatalf("cache holds %d tokens, want 1", n)
			}
			tt.change(t, e, c)
			if d := e.decider.Check(t.Context(), mcpRequest(bearer(tok))); d.Reason != tt.want {
				t.Errorf("after the change: %q, want %q", d.Reason, tt.want)
			}
		})
	}
}

func TestTokenCacheBounded(t *testing.T) {
	c := newTokenCache(64)
	now := time.Unix(1000, 0)
	for i := range 1000 {
		var k [32]byte
		k[0], k[1], k[2] = byte(i), byte(i>>8), 1
		c.put(&k, &verified{validTo: now.Add(time.Hour)}, now)
	}
	if n := c.len(); n > 64 || n < 32 {
		t.Errorf("cache holds %d entries, want at most 64 and not emptied", n)
	}

	// Expired entries are swept before live ones are dropped.
	c = newTokenCache(cacheShards)
	var live, dead [32]byte
	live[1], dead[1] = 1, 2
	c.put(&dead, &verified{validTo: now}, now.Add(-time.Second))
	c.put(&live, &verified{validTo: now.Add(time.Hour)}, now)
	if c.get(&live, now) == nil || c.get(&dead, now) != nil {
		t.Error("want the live entry kept and the expired one gone")
	}
}

func TestHasScope(t *testing.T) {
	tests := []struct {
		scopes, s string
		want      bool
	}{
		{"a b c", "b", true},
		{"a b c", "c", true},
		{"a  b", "b", true},
		{"ab", "a", false},
		{"", "a", false},
		{"a", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.scopes+"/"+tt.s, func(t *testing.T) {
			if got := hasScope(tt.scopes, tt.s); got != tt.want {
				t.Errorf("hasScope(%q, %q) = %v", tt.scopes, tt.s, got)
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   string
		reason Reason
	}{
		{"plain", []string{"Bearer abc.def.ghi"}, "abc.def.ghi", ReasonOK},
		{"case and padding", []string{"BEARER  ab+/=="}, "ab+/==", ReasonOK},
		{"tab separator", []string{"Bearer\tabc"}, "abc", ReasonOK},
		{"none", nil, "", ReasonNoToken},
		{"blank", []string{"  "}, "", ReasonNoToken},
		{"other scheme", []string{"DPoP abc"}, "", ReasonNoToken},
		{"scheme only", []string{"bearer"}, "", ReasonMalformed},
		{"only padding", []string{"Bearer =="}, "", ReasonMalformed},
		{"bad character", []string{"Bearer ab\"c"}, "", ReasonMalformed},
		{"inner padding", []string{"Bearer a=b"}, "", ReasonMalformed},
		{"two words", []string{"Bearer a b"}, "", ReasonMalformed},
		{"two values", []string{"Bearer a", "Bearer b"}, "", ReasonMultipleTokens},
		{"two values one empty", []string{"Bearer a", ""}, "", ReasonMultipleTokens},
		{"comma joined", []string{"Bearer a,Bearer b"}, "", ReasonMultipleTokens},
		{"comma in other scheme", []string{"Basic a, Bearer b"}, "", ReasonMultipleTokens},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := bearerToken(tt.values)
			if got != tt.want || reason != tt.reason {
				t.Errorf("bearerToken(%q) = %q, %q; want %q, %q",
					tt.values, got, reason, tt.want, tt.reason)
			}
		})
	}
}

func TestDenialsCoverEveryTokenReason(t *testing.T) {
	d := denials(Resource{URL: testResource}, nil)
	for _, r := range []Reason{ReasonNoToken, ReasonMalformed, ReasonMultipleTokens,
		ReasonBadSignature, ReasonWrongType, ReasonExpired, ReasonNotYetValid,
		ReasonWrongIssuer, ReasonWrongAudience, ReasonUnknownClient, ReasonRevokedClient,
		ReasonRevokedToken, ReasonInsufficientScope, ReasonMCPHeaderMismatch} {
		if d[r] == nil || d[r].Status == 0 || !strings.HasPrefix(d[r].WWWAuthenticate, "Bearer ") {
			t.Errorf("reason %q has no complete denial: %+v", r, d[r])
		}
	}
}
