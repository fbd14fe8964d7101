package authz

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/mcp-authz/mcp-authz/internal/jwstest"
)

func TestMintVerifyRoundTrip(t *testing.T) {
	e := newTestEnv(t)
	now := e.clock.now()
	tests := []struct {
		name string
		in   AccessClaims
		want AccessClaims
	}{
		{
			name: "defaults filled",
			in: AccessClaims{Subject: "alice", ClientID: "c1", Audience: testResource,
				Scope: "mcp:tools", GrantID: "g1", JTI: "j1"},
			want: AccessClaims{Issuer: testIssuer, Subject: "alice", ClientID: "c1",
				Audience: testResource, Scope: "mcp:tools", GrantID: "g1", JTI: "j1",
				IssuedAt:  now.Truncate(time.Second),
				ExpiresAt: now.Truncate(time.Second).Add(DefaultAccessTokenTTL)},
		},
		{
			name: "explicit times and nbf",
			in: AccessClaims{Subject: "bob", ClientID: "c2", Audience: testResource,
				JTI: "j2", IssuedAt: now.Add(-time.Minute), NotBefore: now.Add(-time.Minute),
				ExpiresAt: now.Add(time.Minute)},
			want: AccessClaims{Issuer: testIssuer, Subject: "bob", ClientID: "c2",
				Audience: testResource, JTI: "j2", IssuedAt: now.Add(-time.Minute),
				NotBefore: now.Add(-time.Minute), ExpiresAt: now.Add(time.Minute)},
		},
		{
			name: "origin resource with trailing slash is canonicalised",
			in: AccessClaims{Subject: "carol", ClientID: "c3", Audience: testRoot + "/",
				JTI: "j3", IssuedAt: now},
			want: AccessClaims{Issuer: testIssuer, Subject: "carol", ClientID: "c3",
				Audience: testRoot, JTI: "j3", IssuedAt: now,
				ExpiresAt: now.Add(DefaultAccessTokenTTL)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, minted, err := e.tokens.Mint(tt.in)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			if diff := cmp.Diff(tt.want, minted); diff != "" {
				t.Errorf("minted claims (-want +got):\n%s", diff)
			}
			got, reason, err := e.tokens.Verify(tok, now)
			if err != nil || reason != ReasonOK {
				t.Fatalf("Verify = %v, %v", reason, err)
			}
			if diff := cmp.Diff(tt.want, *got, cmpTimes); diff != "" {
				t.Errorf("verified claims (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpTimes = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

func TestMintGeneratesUniqueJTI(t *testing.T) {
	e := newTestEnv(t)
	_, a := e.mint(t, nil)
	_, b := e.mint(t, nil)
	if a.JTI == b.JTI || len(a.JTI) != 22 {
		t.Errorf("jti %q and %q: want two distinct 128-bit ids", a.JTI, b.JTI)
	}
}

func TestMintRefuses(t *testing.T) {
	e := newTestEnv(t)
	tests := []struct {
		name string
		edit func(*AccessClaims)
	}{
		{"unknown audience", func(c *AccessClaims) { c.Audience = "http://other/mcp" }},
		{"no subject", func(c *AccessClaims) { c.Subject = "" }},
		{"no client", func(c *AccessClaims) { c.ClientID = "" }},
		{"foreign issuer", func(c *AccessClaims) { c.Issuer = "http://evil" }},
		{"expiry before issue", func(c *AccessClaims) { c.ExpiresAt = c.IssuedAt.Add(-1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := AccessClaims{Subject: "alice", ClientID: "c", Audience: testResource,
				IssuedAt: e.clock.now()}
			tt.edit(&c)
			if tok, _, err := e.tokens.Mint(c); err == nil {
				t.Errorf("Mint = %q, want an error", tok)
			}
		})
	}
}

// TestMintedTokenShape checks the token against jwx's own JWT parser with the
// published JWKS, and the RFC 9068 header.
func TestMintedTokenShape(t *testing.T) {
	e := newTestEnv(t)
	tok, c := e.mint(t, func(c *AccessClaims) { c.IssuedAt = time.Now() })
	doc, err := e.keys.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(doc)
	if err != nil {
		t.Fatalf("parsing JWKS: %v", err)
	}
	parsed, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithValidate(true),
		jwt.WithIssuer(testIssuer), jwt.WithAudience(testResource))
	if err != nil {
		t.Fatalf("jwx rejects the minted token: %v", err)
	}
	if got := parsed.Subject(); got != c.Subject {
		t.Errorf("sub = %q, want %q", got, c.Subject)
	}
	for _, name := range []string{"client_id", "scope", "grant"} {
		if _, ok := parsed.Get(name); !ok {
			t.Errorf("claim %q missing", name)
		}
	}

	var hdr joseHeader
	if err := decodeSegment(strings.Split(tok, ".")[0], &hdr); err != nil {
		t.Fatal(err)
	}
	want := joseHeader{Alg: "ES256", Typ: "at+jwt", Kid: e.keys.SigningKeyID()}
	if diff := cmp.Diff(want, hdr); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
}

// signRaw appends a signature over input, whatever input holds.
func signRaw(input string, sign func([]byte) []byte) string {
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}

func TestVerifyReasons(t *testing.T) {
	e := newTestEnv(t)
	now := e.clock.now()
	real := e.signer(t)
	good := func() map[string]any {
		return map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": real.id}
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
				continue
			}
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	pubDER, err := x509.MarshalPKIXPublicKey(real.pub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	minted, _ := e.mint(t, nil)
	parts := strings.Split(minted, ".")
	sign := jwstest.ES256(real.priv)

	tests := []struct {
		name  string
		token string
		want  Reason
	}{
		{"valid minted", minted, ReasonOK},
		{"valid crafted", jwstest.Craft(t, good(), e.validClaims(), sign), ReasonOK},
		{"typ with media type prefix",
			jwstest.Craft(t, with(good(), "typ", "application/at+jwt"), e.validClaims(), sign), ReasonOK},
		{"empty", "", ReasonMalformed},
		{"one segment", "abc", ReasonMalformed},
		{"two segments", parts[0] + "." + parts[1], ReasonMalformed},
		{"four segments", minted + ".x", ReasonMalformed},
		{"header not base64", "!!!." + parts[1] + "." + parts[2], ReasonMalformed},
		{"header not json", "eyJ." + parts[1] + "." + parts[2], ReasonMalformed},
		{"claims not base64", signRaw(parts[0]+".%%%", sign), ReasonMalformed},
		{"claims not json", signRaw(parts[0]+".bm90IGpzb24", sign), ReasonMalformed},
		{"claims unsigned garbage", parts[0] + ".%%%." + parts[2], ReasonBadSignature},
		{"too long", minted + strings.Repeat("A", maxTokenLen), ReasonMalformed},
		{"missing exp",
			jwstest.Craft(t, good(), with(e.validClaims(), "exp", nil), sign), ReasonMalformed},
		{"missing jti",
			jwstest.Craft(t, good(), with(e.validClaims(), "jti", nil), sign), ReasonMalformed},
		{"aud array", jwstest.Craft(t, good(),
			with(e.validClaims(), "aud", []string{testResource}), sign), ReasonMalformed},
		{"crit header",
			jwstest.Craft(t, with(good(), "crit", []string{"x"}), e.validClaims(), sign), ReasonMalformed},
		{"signature by other key with known kid",
			jwstest.Craft(t, good(), e.validClaims(), jwstest.ES256(otherKey(t))), ReasonBadSignature},
		{"claims swapped under real signature",
			parts[0] + "." + jwstest.Craft(t, good(), e.validClaims(), nil)[len(parts[0])+1:] +
				parts[2], ReasonBadSignature},
		{"alg none", jwstest.Craft(t, with(good(), "alg", "none"), e.validClaims(), nil),
			ReasonBadSignature},
		{"alg none with signature",
			jwstest.Craft(t, with(good(), "alg", "none"), e.validClaims(), sign), ReasonBadSignature},
		{"HS256 with the public key as secret",
			jwstest.Craft(t, with(good(), "alg", "HS256"), e.validClaims(), jwstest.HS256(pubPEM)),
			ReasonBadSignature},
		{"HS256 with the public key DER as secret",
			jwstest.Craft(t, with(good(), "alg", "HS256"), e.validClaims(), jwstest.HS256(pubDER)),
			ReasonBadSignature},
		{"ES384 claimed", jwstest.Craft(t, with(good(), "alg", "ES384"), e.validClaims(), sign),
			ReasonBadSignature},
		{"unknown kid", jwstest.Craft(t, with(good(), "kid", "nope"), e.validClaims(),
			jwstest.ES256(otherKey(t))), ReasonBadSignature},
		{"no kid", jwstest.Craft(t, with(good(), "kid", nil), e.validClaims(), sign),
			ReasonBadSignature},
		{"truncated signature", minted[:len(minted)-4], ReasonBadSignature},
		{"wrong typ JWT", jwstest.Craft(t, with(good(), "typ", "JWT"), e.validClaims(), sign),
			ReasonWrongType},
		{"no typ", jwstest.Craft(t, with(good(), "typ", nil), e.validClaims(), sign), ReasonWrongType},
		{"wrong issuer",
			jwstest.Craft(t, good(), with(e.validClaims(), "iss", "http://localhost:9001"), sign),
			ReasonWrongIssuer},
		{"issuer with trailing slash",
			jwstest.Craft(t, good(), with(e.validClaims(), "iss", testIssuer+"/"), sign),
			ReasonWrongIssuer},
		{"expired", jwstest.Craft(t, good(), with(e.validClaims(),
			"iat", now.Add(-2*time.Hour).Unix(), "exp", now.Add(-time.Hour).Unix()), sign),
			ReasonExpired},
		{"expired beyond leeway", jwstest.Craft(t, good(),
			with(e.validClaims(), "exp", now.Add(-DefaultLeeway).Unix()), sign), ReasonExpired},
		{"expired within leeway", jwstest.Craft(t, good(),
			with(e.validClaims(), "exp", now.Add(-DefaultLeeway+time.Second).Unix()), sign),
			ReasonOK},
		{"not yet valid", jwstest.Craft(t, good(),
			with(e.validClaims(), "nbf", now.Add(time.Minute).Unix()), sign), ReasonNotYetValid},
		{"nbf within leeway", jwstest.Craft(t, good(),
			with(e.validClaims(), "nbf", now.Add(DefaultLeeway).Unix()), sign), ReasonOK},
		{"issued in the future", jwstest.Craft(t, good(),
			with(e.validClaims(), "iat", now.Add(time.Hour).Unix()), sign), ReasonNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reason, err := e.tokens.Verify(tt.token, now)
			if reason != tt.want {
				t.Fatalf("Verify reason = %q (err %v), want %q", reason, err, tt.want)
			}
			if (err == nil) != (tt.want == ReasonOK) || (c == nil) != (tt.want != ReasonOK) {
				t.Errorf("Verify = %v, %v; want claims only on success", c, err)
			}
		})
	}
}
