// Package attack_test is the attack suite: one table of attacks on the
// whole product running in process (registry, keys, the OAuth server over
// HTTP, the ext_authz decision through Envoy's gRPC service, the client id
// metadata document resolver), each with the outcome it must meet. A case
// that fails is a vulnerability; it is fixed in the code, never by changing
// its expected outcome.
//
// Nothing leaves the process but HTTP to the suite's own loopback server;
// document hosts are resolved by a fake resolver and connections to them
// are refused and counted.
package attack_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/authz/cimd"
	"github.com/mcp-authz/mcp-authz/internal/jwstest"
	"github.com/mcp-authz/mcp-authz/registry"
)

// attackCase is one attack and the outcome it must meet. run may also fail
// the test on its own for a side effect the outcome does not show (a
// redirect to the attacker, a forged header passed on, a connection made).
type attackCase struct {
	name string
	run  func(t *testing.T, e *env) outcome
	want outcome
}

func TestAttacks(t *testing.T) {
	for _, a := range attacks() {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			got := a.run(t, e)
			if diff := cmp.Diff(a.want, got); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
		})
	}
}

// attacks is the table. Outcomes: for OAuth endpoints the HTTP status and
// the OAuth error code; for /authorize answers that redirect, 302 and the
// error sent to the registered redirect URI; for ext_authz the HTTP status
// Envoy answers (200 when allowed) and the decision's reason.
func attacks() []attackCase {
	return []attackCase{
		// PKCE (RFC 7636, OAuth 2.1: S256 only).
		{"pkce missing", authorizeWith(func(q url.Values) {
			q.Del("code_challenge")
			q.Del("code_challenge_method")
		}), redirected("invalid_request")},
		{"pkce plain", authorizeWith(func(q url.Values) {
			v, _ := pkce()
			q.Set("code_challenge", v)
			q.Set("code_challenge_method", "plain")
		}), redirected("invalid_request")},
		{"pkce method omitted", authorizeWith(func(q url.Values) {
			q.Del("code_challenge_method")
		}), redirected("invalid_request")},
		{"pkce wrong verifier", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			code, _ := e.code(c, appRedirect)
			other, _ := pkce()
			o, _ := e.exchange(c, code, other, appRedirect)
			return o
		}, oauthError(400, "invalid_grant")},
		{"pkce verifier omitted", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			code, _ := e.code(c, appRedirect)
			o, _ := e.exchange(c, code, "", appRedirect)
			return o
		}, oauthError(400, "invalid_request")},
		{"pkce challenge sent as verifier", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			_, challenge := pkce()
			code := e.authorize(authParams(c, appRedirect, challenge)).Query().Get("code")
			o, _ := e.exchange(c, code, challenge, appRedirect)
			return o
		}, oauthError(400, "invalid_grant")},

		// Authorization codes: single use, bound to client and redirect URI.
		{"code used twice", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			code, v := e.code(c, appRedirect)
			if o, _ := e.exchange(c, code, v, appRedirect); o != oauthOK {
				t.Fatalf("first exchange: %+v", o)
			}
			o, _ := e.exchange(c, code, v, appRedirect)
			return o
		}, oauthError(400, "invalid_grant")},
		{"code replay revokes the tokens it issued", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			code, v := e.code(c, appRedirect)
			_, got := e.exchange(c, code, v, appRedirect)
			at := str(got["access_token"])
			if o := e.checkOutcome(post(at, rpc("tools/list", ""))); o != allowed {
				t.Fatalf("fresh token: %+v", o)
			}
			e.exchange(c, code, v, appRedirect)
			return e.checkOutcome(post(at, rpc("tools/list", "")))
		}, badToken(authz.ReasonRevokedToken)},
		{"code redeemed by another client", func(t *testing.T, e *env) outcome {
			victim, thief := e.publicClient(), e.publicClient()
			code, v := e.code(victim, appRedirect)
			o, _ := e.exchange(thief, code, v, appRedirect)
			return o
		}, oauthError(400, "invalid_grant")},
		{"code with another registered redirect uri", func(t *testing.T, e *env) outcome {
			c := e.publicClient(appRedirect, "https://app.example.com/other")
			code, v := e.code(c, appRedirect)
			o, _ := e.exchange(c, code, v, "https://app.example.com/other")
			return o
		}, oauthError(400, "invalid_grant")},
		{"code without the redirect uri it was issued for", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			code, v := e.code(c, appRedirect)
			o, _ := e.form("/token", url.Values{"grant_type": {"authorization_code"},
				"code": {code}, "code_verifier": {v}, "client_id": {c.id}})
			return o
		}, oauthError(400, "invalid_grant")},
		{"code for another resource", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			code, v := e.code(c, appRedirect)
			o, _ := e.form("/token", url.Values{"grant_type": {"authorization_code"},
				"code": {code}, "code_verifier": {v}, "client_id": {c.id},
				"redirect_uri": {appRedirect}, "resource": {resOther}})
			return o
		}, oauthError(400, "invalid_target")},

		// Redirect URIs: exact match, except the port of a loopback URI.
		redirectCase("redirect prefix of the registered", "https://app.example.com/c"),
		redirectCase("redirect extends the path", "https://app.example.com/cb/evil"),
		redirectCase("redirect extends the segment", "https://app.example.com/cbx"),
		redirectCase("redirect host suffix", "https://app.example.com.evil.example/cb"),
		redirectCase("redirect subdomain", "https://evil.app.example.com/cb"),
		redirectCase("redirect host case", "https://APP.example.com/cb"),
		redirectCase("redirect path case", "https://app.example.com/CB"),
		redirectCase("redirect userinfo host", "https://app.example.com@evil.example/cb"),
		redirectCase("redirect userinfo", "https://evil@app.example.com/cb"),
		redirectCase("redirect fragment", "https://app.example.com/cb#evil"),
		redirectCase("redirect encoded path", "https://app.example.com/%63b"),
		redirectCase("redirect encoded traversal", "https://app.example.com/cb%2f..%2fevil"),
		redirectCase("redirect encoded host", "https://app%2eexample.com/cb"),
		redirectCase("redirect port", "https://app.example.com:8443/cb"),
		redirectCase("redirect explicit default port", "https://app.example.com:443/cb"),
		redirectCase("redirect query added", "https://app.example.com/cb?x=1"),
		redirectCase("redirect scheme downgrade", "http://app.example.com/cb"),
		redirectCase("redirect loopback other host", "http://localhost:5555/callback"),
		redirectCase("redirect loopback other path", "http://127.0.0.1:5555/callback/x"),
		redirectCase("redirect loopback userinfo", "http://evil@127.0.0.1:5555/callback"),
		redirectCase("redirect loopback encoded", "http://127.0.0.1:5555/%63allback"),
		{"redirect loopback port is free", func(t *testing.T, e *env) outcome {
			c := e.publicClient(appRedirect, loopbackRedirect)
			_, challenge := pkce()
			resp, _ := e.get(e.browser(),
				"/authorize?"+authParams(c, "http://127.0.0.1:51234/callback", challenge).Encode())
			return outcome{resp.StatusCode, resp.Header.Get("Location")}
		}, outcome{200, ""}},
		registerCase("register javascript redirect", "javascript:alert(1)//"),
		registerCase("register http redirect off loopback", "http://app.example.com/cb"),
		registerCase("register redirect with fragment", "https://app.example.com/cb#f"),
		registerCase("register redirect with userinfo", "https://u:p@app.example.com/cb"),

		{"authorize of an unknown client does not redirect", func(t *testing.T, e *env) outcome {
			_, challenge := pkce()
			q := authParams(client{id: "never-registered"}, "https://evil.example/cb", challenge)
			resp, body := e.get(e.browser(), "/authorize?"+q.Encode(), "Accept",
				"application/json")
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("redirected to %q", loc)
			}
			var got struct{ Error string }
			_ = json.Unmarshal([]byte(body), &got)
			return outcome{resp.StatusCode, got.Error}
		}, oauthError(400, "invalid_client")},
		{"authorize with a scope the resource does not offer", authorizeWith(func(q url.Values) {
			q.Set("scope", "mcp:read mcp:root")
		}), redirected("invalid_scope")},
		{"confidential client without its secret", confidential(""),
			oauthError(401, "invalid_client")},
		{"confidential client with a wrong secret", confidential("not-the-secret"),
			oauthError(401, "invalid_client")},

		// State is echoed only when it is safe.
		{"state with CR LF", badState("x\r\nSet-Cookie: session=evil"),
			redirected("invalid_request")},
		{"state with a lone LF", badState("x\nLocation: https://evil.example/"),
			redirected("invalid_request")},
		{"state too long", badState(strings.Repeat("s", 4096)), redirected("invalid_request")},

		// Access tokens at the ext_authz decision.
		{"valid token", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			return e.checkOutcome(post(e.mint(c.id, "mcp:read", nil), rpc("tools/list", "")))
		}, allowed},
		{"alg none", forged(func(e *env, c map[string]any) string {
			_, kid := e.signingKey()
			return jwstest.Craft(e.t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, c, nil)
		}), badToken(authz.ReasonBadSignature)},
		{"alg none with a copied signature", forged(func(e *env, c map[string]any) string {
			real := e.mint(str(c["client_id"]), "mcp:read", nil)
			_, kid := e.signingKey()
			tok := jwstest.Craft(e.t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, c, nil)
			return tok + real[strings.LastIndexByte(real, '.')+1:]
		}), badToken(authz.ReasonBadSignature)},
		{"hs256 keyed with the PEM public key", forged(func(e *env, c map[string]any) string {
			priv, kid := e.signingKey()
			der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
			key := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			return jwstest.Craft(e.t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid}, c,
				jwstest.HS256(key))
		}), badToken(authz.ReasonBadSignature)},
		{"hs256 keyed with the published JWK", forged(func(e *env, c map[string]any) string {
			_, kid := e.signingKey()
			jwks, err := e.keys.JWKS()
			if err != nil {
				e.t.Fatal(err)
			}
			var set struct{ Keys []json.RawMessage }
			if err := json.Unmarshal(jwks, &set); err != nil || len(set.Keys) == 0 {
				e.t.Fatalf("jwks %s: %v", jwks, err)
			}
			return jwstest.Craft(e.t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid}, c,
				jwstest.HS256(set.Keys[0]))
		}), badToken(authz.ReasonBadSignature)},
		{"unknown kid", forged(func(e *env, c map[string]any) string {
			k := attackerKey(e.t)
			return jwstest.Craft(e.t, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": "attacker"},
				c, jwstest.ES256(k))
		}), badToken(authz.ReasonBadSignature)},
		{"real kid, attacker's signature", forged(func(e *env, c map[string]any) string {
			_, kid := e.signingKey()
			return jwstest.Craft(e.t, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": kid}, c,
				jwstest.ES256(attackerKey(e.t)))
		}), badToken(authz.ReasonBadSignature)},
		{"embedded jwk of the attacker", forged(func(e *env, c map[string]any) string {
			k := attackerKey(e.t)
			pub, err := k.PublicKey.Bytes() // 0x04, then X and Y, 32 bytes each
			if err != nil {
				e.t.Fatal(err)
			}
			jwk := map[string]any{"kty": "EC", "crv": "P-256",
				"x": b64(pub[1:33]), "y": b64(pub[33:])}
			return jwstest.Craft(e.t, map[string]any{"alg": "ES256", "typ": "at+jwt", "jwk": jwk,
				"jku": "https://evil.example/jwks"}, c, jwstest.ES256(k))
		}), badToken(authz.ReasonBadSignature)},
		{"tampered scope", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			tok := e.mint(c.id, "mcp:read", nil)
			parts := strings.Split(tok, ".")
			claims := e.claims(c.id, "mcp:read mcp:write mcp:admin")
			p, _ := json.Marshal(claims)
			parts[1] = b64(p)
			return e.checkOutcome(post(strings.Join(parts, "."), toolCall("delete_everything")))
		}, badToken(authz.ReasonBadSignature)},
		{"expired", minted(func(c *authz.AccessClaims) {
			c.IssuedAt = time.Now().Add(-2 * time.Hour)
			c.ExpiresAt = time.Now().Add(-time.Hour)
		}), badToken(authz.ReasonExpired)},
		{"not yet valid", minted(func(c *authz.AccessClaims) {
			c.NotBefore = time.Now().Add(time.Hour)
		}), badToken(authz.ReasonNotYetValid)},
		{"issued in the future", minted(func(c *authz.AccessClaims) {
			c.IssuedAt = time.Now().Add(time.Hour)
			c.ExpiresAt = time.Now().Add(2 * time.Hour)
		}), badToken(authz.ReasonNotYetValid)},
		{"wrong issuer", realKey(func(e *env, c map[string]any) {
			c["iss"] = "https://evil.example"
		}), badToken(authz.ReasonWrongIssuer)},
		{"issuer with a trailing slash", realKey(func(e *env, c map[string]any) {
			c["iss"] = e.issuer + "/"
		}), badToken(authz.ReasonWrongIssuer)},
		{"wrong audience", minted(func(c *authz.AccessClaims) {
			c.Audience = resOther
		}), badToken(authz.ReasonWrongAudience)},
		{"audience list", realKey(func(e *env, c map[string]any) {
			c["aud"] = []string{resMCP, resOther}
		}), badToken(authz.ReasonMalformed)},
		{"not an access token (typ JWT)", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			priv, kid := e.signingKey()
			tok := jwstest.Craft(t, map[string]any{"alg": "ES256", "typ": "JWT", "kid": kid},
				e.claims(c.id, "mcp:read"), jwstest.ES256(priv))
			return e.checkOutcome(post(tok, rpc("tools/list", "")))
		}, badToken(authz.ReasonWrongType)},
		{"unknown client", realKey(func(e *env, c map[string]any) {
			c["client_id"] = "never-registered"
		}), badToken(authz.ReasonUnknownClient)},
		{"revoked client", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			tok := e.mint(c.id, "mcp:read", nil)
			if o := e.checkOutcome(post(tok, rpc("tools/list", ""))); o != allowed {
				t.Fatalf("before revocation: %+v", o)
			}
			e.revokeClient(c.id)
			return e.checkOutcome(post(tok, rpc("tools/list", "")))
		}, badToken(authz.ReasonRevokedClient)},
		{"revoked client at the token endpoint", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			rt := str(e.grant(c)["refresh_token"])
			e.revokeClient(c.id)
			o, _ := e.refresh(c, rt)
			return o
		}, oauthError(401, "invalid_client")},
		{"revoked jti", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			at := str(e.grant(c)["access_token"])
			if o := e.checkOutcome(post(at, rpc("tools/list", ""))); o != allowed {
				t.Fatalf("before revocation: %+v", o)
			}
			if o, _ := e.form("/revoke", url.Values{"token": {at}, "client_id": {c.id}}); o !=
				oauthOK {
				t.Fatalf("revoke: %+v", o)
			}
			return e.checkOutcome(post(at, rpc("tools/list", "")))
		}, badToken(authz.ReasonRevokedToken)},
		{"revocation by another client is ignored", func(t *testing.T, e *env) outcome {
			victim, other := e.publicClient(), e.publicClient()
			at := str(e.grant(victim)["access_token"])
			e.form("/revoke", url.Values{"token": {at}, "client_id": {other.id}})
			return e.checkOutcome(post(at, rpc("tools/list", "")))
		}, allowed},
		{"crit header", realKeyHeader(map[string]any{"crit": []string{"exp"}, "exp": 1}),
			badToken(authz.ReasonMalformed)},
		{"refresh token as bearer", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			rt := str(e.grant(c)["refresh_token"])
			return e.checkOutcome(post(rt, rpc("tools/list", "")))
		}, badToken(authz.ReasonMalformed)},
		{"two bearer tokens", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			read := e.mint(c.id, "mcp:read", nil)
			admin := e.mint(c.id, "mcp:read mcp:write mcp:admin", nil)
			call := post(read, toolCall("delete_everything"), "authorization", "Bearer "+admin)
			call.raw = true
			return e.checkOutcome(call)
		}, denied(400, authz.ReasonMultipleTokens)},
		{"oversized token", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			priv, kid := e.signingKey()
			claims := e.claims(c.id, "mcp:read")
			claims["pad"] = strings.Repeat("a", 9000)
			tok := jwstest.Craft(t, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": kid}, claims,
				jwstest.ES256(priv))
			return e.checkOutcome(post(tok, rpc("tools/list", "")))
		}, badToken(authz.ReasonMalformed)},

		// Refresh tokens rotate; reuse revokes the family.
		{"refresh reuse", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			rt1 := str(e.grant(c)["refresh_token"])
			if o, _ := e.refresh(c, rt1); o != oauthOK {
				t.Fatalf("first refresh: %+v", o)
			}
			o, _ := e.refresh(c, rt1)
			return o
		}, oauthError(400, "invalid_grant")},
		{"refresh reuse revokes the rotated token", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			rt1 := str(e.grant(c)["refresh_token"])
			_, got := e.refresh(c, rt1)
			e.refresh(c, rt1)
			o, _ := e.refresh(c, str(got["refresh_token"]))
			return o
		}, oauthError(400, "invalid_grant")},
		{"refresh reuse revokes access tokens", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			rt1 := str(e.grant(c)["refresh_token"])
			_, got := e.refresh(c, rt1)
			at := str(got["access_token"])
			if o := e.checkOutcome(post(at, rpc("tools/list", ""))); o != allowed {
				t.Fatalf("rotated access token: %+v", o)
			}
			e.refresh(c, rt1)
			return e.checkOutcome(post(at, rpc("tools/list", "")))
		}, badToken(authz.ReasonRevokedToken)},
		{"refresh by another client", func(t *testing.T, e *env) outcome {
			victim, thief := e.publicClient(), e.publicClient()
			rt := str(e.grant(victim)["refresh_token"])
			o, _ := e.refresh(thief, rt)
			return o
		}, oauthError(400, "invalid_grant")},
		{"refresh widening the scope", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			rt := str(e.grant(c)["refresh_token"])
			o, _ := e.refresh(c, rt, "scope", "mcp:read mcp:admin")
			return o
		}, oauthError(400, "invalid_scope")},

		// Oversized and deeply nested JSON.
		{"oversized registration", func(t *testing.T, e *env) outcome {
			o, _ := e.registerRaw([]byte(`{"redirect_uris":["` + appRedirect + `"],"x":"` +
				strings.Repeat("a", 70<<10) + `"}`))
			return o
		}, oauthError(413, "invalid_client_metadata")},
		{"deeply nested registration", func(t *testing.T, e *env) outcome {
			o, _ := e.registerRaw([]byte(`{"redirect_uris":["` + appRedirect + `"],"x":` +
				strings.Repeat("[", 30000) + strings.Repeat("]", 30000) + `}`))
			return o
		}, oauthError(400, "invalid_client_metadata")},
		{"deeply nested MCP body", withWrite(func(tok string) mcpCall {
			return post(tok, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":`+
				strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}}`,
				"mcp-method", "tools/list")
		}), lacksScopes},
		{"oversized MCP body", withWrite(func(tok string) mcpCall {
			return post(tok, rpc("tools/list", `{"pad":"`+strings.Repeat("a", 1<<20)+`"}`),
				"mcp-method", "tools/list")
		}), lacksScopes},
		{"MCP body cut by the proxy", withWrite(func(tok string) mcpCall {
			c := post(tok, rpc("tools/list", ""), "mcp-method", "tools/list")
			c.partial = true
			return c
		}), lacksScopes},

		// Scope rules per MCP method and tool.
		{"tool call with a read token", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			o, resp := e.check(post(e.mint(c.id, "mcp:read", nil), toolCall("echo"),
				"mcp-method", "tools/call", "mcp-name", "echo"))
			wantScope(t, resp, "mcp:read mcp:write")
			return o
		}, lacksScopes},
		{"admin tool with a write token", withWrite(func(tok string) mcpCall {
			return post(tok, toolCall("delete_everything"),
				"mcp-method", "tools/call", "mcp-name", "delete_everything")
		}), lacksScopes},
		{"admin tool names every needed scope", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			o, resp := e.check(post(e.mint(c.id, "mcp:read mcp:write", nil),
				toolCall("delete_everything")))
			wantScope(t, resp, "mcp:read mcp:write mcp:admin")
			return o
		}, lacksScopes},
		{"headers name a harmless tool, body the admin one", withWrite(func(tok string) mcpCall {
			return post(tok, toolCall("delete_everything"),
				"mcp-method", "tools/call", "mcp-name", "echo")
		}), denied(400, authz.ReasonMCPHeaderMismatch)},
		{"header says list, body calls", withWrite(func(tok string) mcpCall {
			return post(tok, toolCall("delete_everything"), "mcp-method", "tools/list")
		}), denied(400, authz.ReasonMCPHeaderMismatch)},
		{"method hidden under another case", withWrite(func(tok string) mcpCall {
			return post(tok, `{"jsonrpc":"2.0","id":1,"method":"tools/list",`+
				`"Method":"tools/call","params":{"name":"delete_everything"}}`,
				"mcp-method", "tools/list")
		}), lacksScopes},
		{"duplicate method member", withWrite(func(tok string) mcpCall {
			return post(tok, `{"jsonrpc":"2.0","id":1,"method":"tools/list",`+
				`"method":"tools/call","params":{"name":"delete_everything"}}`)
		}), lacksScopes},
		{"escaped method and tool name", withWrite(func(tok string) mcpCall {
			return post(tok, `{"jsonrpc":"2.0","id":1,"method":"tools\/call",`+
				`"params":{"name":"delete\u005feverything"}}`)
		}), lacksScopes},
		{"batch hides the admin call", withWrite(func(tok string) mcpCall {
			return post(tok, "["+rpc("tools/list", "")+","+toolCall("delete_everything")+"]")
		}), lacksScopes},
		{"no method header and no body", withWrite(func(tok string) mcpCall {
			return post(tok, "")
		}), lacksScopes},
		{"repeated Mcp-Name joined by the proxy", withWrite(func(tok string) mcpCall {
			return post(tok, "", "mcp-method", "tools/call", "mcp-name", "echo",
				"mcp-name", "delete_everything")
		}), lacksScopes},
		{"repeated Mcp-Name in header_map", withWrite(func(tok string) mcpCall {
			c := post(tok, "", "mcp-method", "tools/call", "mcp-name", "echo",
				"mcp-name", "delete_everything")
			c.raw = true
			return c
		}), lacksScopes},
		{"repeated Mcp-Method in header_map", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			call := post(e.mint(c.id, "mcp:read", nil), "", "mcp-method", "tools/list",
				"mcp-method", "tools/call", "mcp-name", "delete_everything")
			call.raw = true
			return e.checkOutcome(call)
		}, denied(400, authz.ReasonMCPHeaderMismatch)},
		{"repeated Mcp-Name through the HTTP check", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			return e.checkHTTP(post(e.mint(c.id, "mcp:read mcp:write", nil), "",
				"mcp-method", "tools/call", "mcp-name", "echo",
				"mcp-name", "delete_everything"))
		}, lacksScopes},
		{"repeated Mcp-Method through the HTTP check", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			return e.checkHTTP(post(e.mint(c.id, "mcp:read", nil), "",
				"mcp-method", "tools/list", "mcp-method", "tools/call",
				"mcp-name", "delete_everything"))
		}, denied(400, authz.ReasonMCPHeaderMismatch)},
		{"header disagreeing with the body through the HTTP check",
			func(t *testing.T, e *env) outcome {
				c := e.publicClient()
				return e.checkHTTP(post(e.mint(c.id, "mcp:read mcp:write", nil),
					toolCall("delete_everything"), "mcp-method", "tools/call",
					"mcp-name", "echo"))
			}, denied(400, authz.ReasonMCPHeaderMismatch)},
		{"event stream needs the required scopes only", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			call := post(e.mint(c.id, "mcp:read", nil), "")
			call.method = http.MethodGet
			return e.checkOutcome(call)
		}, allowed},
		{"GET naming a tool in headers", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			call := post(e.mint(c.id, "mcp:read mcp:write", nil), "",
				"mcp-method", "tools/call", "mcp-name", "delete_everything")
			call.method = http.MethodGet
			return e.checkOutcome(call)
		}, denied(403, authz.ReasonInsufficientScope)},
		{"GET carrying a tools/call body", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			call := post(e.mint(c.id, "mcp:read mcp:write", nil), toolCall("delete_everything"))
			call.method = http.MethodGet
			return e.checkOutcome(call)
		}, denied(403, authz.ReasonInsufficientScope)},
		{"path traversal to another resource", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			call := post(e.mint(c.id, "mcp:read", nil), rpc("tools/list", ""))
			call.path = "/mcp/..%2f..%2fadmin"
			return e.checkOutcome(call)
		}, denied(403, authz.ReasonUnknownResource)},

		// Identity headers cannot be forged.
		{"forged identity headers", func(t *testing.T, e *env) outcome {
			c := e.publicClient()
			o, resp := e.check(post(e.mint(c.id, "mcp:read", nil), rpc("tools/list", ""),
				"x-mcp-client-id", "admin-console", "x-mcp-subject", "root",
				"x-mcp-scope", "mcp:admin"))
			got := map[string]string{}
			for _, h := range resp.GetOkResponse().GetHeaders() {
				got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
			}
			want := map[string]string{"x-mcp-client-id": c.id, "x-mcp-subject": user,
				"x-mcp-scope": "mcp:read"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("upstream headers (-want +got):\n%s", diff)
			}
			return o
		}, allowed},
		{"CORS preflight carries no identity", func(t *testing.T, e *env) outcome {
			o, resp := e.check(mcpCall{method: http.MethodOptions, headers: []string{
				"origin", "http://localhost:6274", "access-control-request-method", "POST",
				"x-mcp-client-id", "admin-console"}})
			removed := resp.GetOkResponse().GetHeadersToRemove()
			for _, h := range []string{"authorization", "x-mcp-client-id", "x-mcp-subject",
				"x-mcp-scope"} {
				if !slices.Contains(removed, h) {
					t.Errorf("preflight keeps %s (removed: %v)", h, removed)
				}
			}
			return o
		}, outcome{200, string(authz.ReasonCORSPreflight)}},

		// Client id metadata documents: the host is vetted before any
		// connection; the fake resolver answers, nothing is dialed.
		cimdCase("CIMD host resolving to loopback", "127.0.0.1"),
		cimdCase("CIMD host resolving to IPv6 loopback", "::1"),
		cimdCase("CIMD host resolving to a private address", "10.1.2.3"),
		cimdCase("CIMD host resolving to link-local metadata", "169.254.169.254"),
		cimdCase("CIMD host resolving to IPv4-mapped loopback", "::ffff:127.0.0.1"),
		cimdCase("CIMD host resolving to IPv6 link-local", "fe80::1"),
		cimdCase("CIMD host with one private address among public", "8.8.8.8", "192.168.1.1"),
		{"CIMD IP literal host", func(t *testing.T, e *env) outcome {
			return e.cimdAuthorize(t, "https://127.0.0.1/client.json")
		}, oauthError(400, "invalid_client")},
		{"CIMD public host is dialed (control)", func(t *testing.T, e *env) outcome {
			e.dns["client.example"] = []netip.Addr{netip.MustParseAddr("8.8.8.8")}
			_, challenge := pkce()
			q := url.Values{"response_type": {"code"},
				"client_id":    {"https://client.example/oauth/client.json"},
				"redirect_uri": {loopbackRedirect}, "code_challenge": {challenge},
				"code_challenge_method": {"S256"}, "resource": {resMCP}}
			resp, _ := e.get(e.browser(), "/authorize?"+q.Encode(), "Accept",
				"application/json")
			return outcome{resp.StatusCode, strings.Join(e.dialed(), " ")}
		}, outcome{400, "8.8.8.8:443"}},
	}
}

// authorizeWith starts an authorization of a registered client with
// edited parameters and returns where the answer sent the browser.
func authorizeWith(edit func(url.Values)) func(*testing.T, *env) outcome {
	return func(t *testing.T, e *env) outcome {
		return e.redirectOutcome(e.startAuthorization(edit), appRedirect)
	}
}

// badState starts an authorization with a state that must be refused and
// never echoed.
func badState(state string) func(*testing.T, *env) outcome {
	return func(t *testing.T, e *env) outcome {
		resp := e.startAuthorization(func(q url.Values) { q.Set("state", state) })
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc != nil && loc.Query().Has("state") {
			t.Errorf("Location %q echoes the refused state", resp.Header.Get("Location"))
		}
		return e.redirectOutcome(resp, appRedirect)
	}
}

// startAuthorization sends an edited authorization request of a registered
// client and returns the answer.
func (e *env) startAuthorization(edit func(url.Values)) *http.Response {
	e.t.Helper()
	c := e.publicClient()
	_, challenge := pkce()
	q := authParams(c, appRedirect, challenge)
	edit(q)
	resp, _ := e.get(e.browser(), "/authorize?"+q.Encode())
	return resp
}

// redirectCase asks /authorize to send a client's answer to an
// unregistered redirect URI: it must answer 400 itself, never redirect.
func redirectCase(name, redirect string) attackCase {
	return attackCase{name, func(t *testing.T, e *env) outcome {
		c := e.publicClient(appRedirect, loopbackRedirect)
		_, challenge := pkce()
		resp, body := e.get(e.browser(), "/authorize?"+
			authParams(c, redirect, challenge).Encode(), "Accept", "application/json")
		if loc := resp.Header.Get("Location"); loc != "" {
			t.Errorf("redirected to %q", loc)
		}
		var got struct{ Error string }
		_ = json.Unmarshal([]byte(body), &got)
		return outcome{resp.StatusCode, got.Error}
	}, noRedirect}
}

// registerCase registers a client with an invalid redirect URI.
func registerCase(name, redirect string) attackCase {
	return attackCase{name, func(t *testing.T, e *env) outcome {
		o, _ := e.register(map[string]any{"redirect_uris": []string{redirect},
			"token_endpoint_auth_method": "none"})
		return o
	}, oauthError(400, "invalid_redirect_uri")}
}

// forged checks a token built by build from a valid token's claims.
func forged(build func(e *env, claims map[string]any) string) func(*testing.T, *env) outcome {
	return func(t *testing.T, e *env) outcome {
		c := e.publicClient()
		return e.checkOutcome(post(build(e, e.claims(c.id, "mcp:read")), rpc("tools/list", "")))
	}
}

// realKey checks a token signed with the real key whose claims edit changed.
func realKey(edit func(e *env, claims map[string]any)) func(*testing.T, *env) outcome {
	return forged(func(e *env, c map[string]any) string {
		edit(e, c)
		priv, kid := e.signingKey()
		return jwstest.Craft(e.t, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": kid}, c,
			jwstest.ES256(priv))
	})
}

// realKeyHeader checks a token with valid claims signed with the real key
// under a header with extra members.
func realKeyHeader(extra map[string]any) func(*testing.T, *env) outcome {
	return forged(func(e *env, c map[string]any) string {
		priv, kid := e.signingKey()
		hdr := map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": kid}
		maps.Copy(hdr, extra)
		return jwstest.Craft(e.t, hdr, c, jwstest.ES256(priv))
	})
}

// confidential registers a client_secret_post client, runs the flow and
// exchanges its code presenting secret instead of the issued one.
func confidential(secret string) func(*testing.T, *env) outcome {
	return func(t *testing.T, e *env) outcome {
		o, c := e.register(map[string]any{"redirect_uris": []string{appRedirect},
			"token_endpoint_auth_method": "client_secret_post"})
		if o.Status != http.StatusCreated || c.secret == "" {
			t.Fatalf("registering: %+v %+v", o, c)
		}
		code, v := e.code(c, appRedirect)
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"code_verifier": {v}, "client_id": {c.id}, "redirect_uri": {appRedirect}}
		if secret != "" {
			f.Set("client_secret", secret)
		}
		got, _ := e.form("/token", f)
		return got
	}
}

// minted checks a token minted by the token service with edited claims.
func minted(edit func(*authz.AccessClaims)) func(*testing.T, *env) outcome {
	return func(t *testing.T, e *env) outcome {
		c := e.publicClient()
		return e.checkOutcome(post(e.mint(c.id, "mcp:read", edit), rpc("tools/list", "")))
	}
}

// withWrite checks the call built with a token holding mcp:read and
// mcp:write (not mcp:admin).
func withWrite(build func(tok string) mcpCall) func(*testing.T, *env) outcome {
	return func(t *testing.T, e *env) outcome {
		c := e.publicClient()
		return e.checkOutcome(build(e.mint(c.id, "mcp:read mcp:write", nil)))
	}
}

// cimdCase starts an authorization whose client id is a document URL on a
// host the fake resolver maps to addrs. The refusal must be the address
// check's, made before any connection.
func cimdCase(name string, addrs ...string) attackCase {
	return attackCase{name, func(t *testing.T, e *env) outcome {
		host := "client.attacker.example"
		for _, a := range addrs {
			e.dns[host] = append(e.dns[host], netip.MustParseAddr(a))
		}
		return e.cimdAuthorize(t, "https://"+host+"/oauth/client.json")
	}, oauthError(400, "invalid_client")}
}

// cimdAuthorize starts an authorization for a client id URL. A connection
// attempt, a redirect or a refusal for another reason than the address
// fails the case whatever the answer.
func (e *env) cimdAuthorize(t *testing.T, clientID string) outcome {
	_, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {clientID},
		"redirect_uri": {loopbackRedirect}, "code_challenge": {challenge},
		"code_challenge_method": {"S256"}, "resource": {resMCP}}
	resp, body := e.get(e.browser(), "/authorize?"+q.Encode(), "Accept", "application/json")
	if d := e.dialed(); len(d) > 0 {
		t.Errorf("the document host was dialed: %v", d)
		return outcome{resp.StatusCode, "connected"}
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		t.Errorf("redirected to %q", loc)
	}
	var got struct {
		Error       string
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal([]byte(body), &got)
	if !strings.Contains(got.Description, cimd.ErrAddressRefused.Error()) {
		t.Errorf("refused for another reason than the address: %q", got.Description)
	}
	return outcome{resp.StatusCode, got.Error}
}

// revokeClient revokes a client the way an operator does: in the registry.
func (e *env) revokeClient(id string) {
	e.t.Helper()
	err := e.store.Update(e.t.Context(), func(tx *registry.Txn) error {
		c := tx.Client(id).Copy()
		c.RevokedAt = time.Now().UTC()
		return tx.PutClient(c)
	})
	if err != nil {
		e.t.Fatalf("revoking client %q: %v", id, err)
	}
}

// wantScope checks that a denial's challenge names exactly scope.
func wantScope(t *testing.T, resp *authv3.CheckResponse, scope string) {
	t.Helper()
	if c := challenge(resp); !strings.Contains(c, `scope="`+scope+`"`) {
		t.Errorf("challenge %q does not name scope %q", c, scope)
	}
}

func attackerKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
