package authz

import (
	"strings"
	"testing"

	"github.com/mcp-authz/mcp-authz/internal/jwstest"
)

// BenchmarkCheckValidToken measures a whole decision for a valid token:
// cached (the verified token is remembered, as for every request after a
// client's first), uncached (ECDSA verification every time) and cached
// under parallel load.
func BenchmarkCheckValidToken(b *testing.B) {
	e := newTestEnv(b)
	e.putClient(b, "client-1", false)
	tok, _ := e.mint(b, nil)
	req := mcpRequest(bearer(tok))
	check := func(b *testing.B) {
		if d := e.decider.Check(b.Context(), req); !d.Allow {
			b.Fatalf("denied: %s", d.Reason)
		}
	}

	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		check(b)
		for b.Loop() {
			check(b)
		}
	})
	b.Run("uncached", func(b *testing.B) {
		cache := e.decider.cache
		e.decider.cache = nil
		b.Cleanup(func() { e.decider.cache = cache })
		b.ReportAllocs()
		for b.Loop() {
			check(b)
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		b.ReportAllocs()
		check(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if d := e.decider.Check(b.Context(), req); !d.Allow {
					b.Errorf("denied: %s", d.Reason)
					return
				}
			}
		})
	})
}

// BenchmarkCheckDeny measures the cheapest denials, which an unauthenticated
// flood hits: no token, and a token with a bad signature.
func BenchmarkCheckDeny(b *testing.B) {
	e := newTestEnv(b)
	bad := jwstest.Craft(b, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": e.signer(b).id},
		e.validClaims(), jwstest.ES256(otherKey(b)))
	for _, bc := range []struct {
		name string
		req  *Request
		want Reason
	}{
		{"no-token", mcpRequest(), ReasonNoToken},
		{"bad-signature", mcpRequest(bearer(bad)), ReasonBadSignature},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := e.decider.Check(b.Context(), bc.req); d.Reason != bc.want {
					b.Fatalf("reason %s", d.Reason)
				}
			}
		})
	}
}

func BenchmarkMint(b *testing.B) {
	e := newTestEnv(b)
	c := AccessClaims{Subject: "alice", ClientID: "client-1", Audience: testResource,
		Scope: "mcp:tools", GrantID: "g"}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := e.tokens.Mint(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckWithToolRules measures a cached decision on a resource with
// scope rules, for a tools/call named by its headers only, by its body only
// (Envoy's with_request_body), and by both (headers checked against the
// body), and for a 4 KiB tool call body.
func BenchmarkCheckWithToolRules(b *testing.B) {
	e := newTestEnvConfig(b, ruleConfig())
	e.putClient(b, "client-1", false)
	tok, _ := e.mint(b, func(c *AccessClaims) {
		c.Audience, c.Scope = ruleResource, "mcp:read mcp:write"
	})
	body := call("tools/call", `{"name":"echo","arguments":{"text":"hello"}}`)
	big := call("tools/call", `{"name":"echo","arguments":{"text":"`+
		strings.Repeat("x", 4<<10)+`","n":[1,2,3]}}`)
	for _, bc := range []struct {
		name string
		req  *Request
	}{
		{"header", mcpPost(tok, "", "mcp-method", "tools/call", "mcp-name", "echo")},
		{"body", mcpPost(tok, body)},
		{"header-and-body", mcpPost(tok, body, "mcp-method", "tools/call", "mcp-name", "echo")},
		{"body-4KiB", mcpPost(tok, big, "mcp-method", "tools/call", "mcp-name", "echo")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := e.decider.Check(b.Context(), bc.req); !d.Allow {
					b.Fatalf("denied: %s", d.Reason)
				}
			}
		})
	}
}

// BenchmarkParseMCPBody measures the body reader alone on a 64 KiB tool
// call (Envoy's usual max_request_bytes).
func BenchmarkParseMCPBody(b *testing.B) {
	body := []byte(call("tools/call", `{"name":"echo","arguments":{"text":"`+
		strings.Repeat("x", 64<<10)+`","list":[`+strings.Repeat(`{"a":1.5,"b":[true,null]},`, 100)+
		`0]}}`))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var buf [1]mcpCall
	for b.Loop() {
		if _, _, ok := parseMCPBody(body, buf[:0]); !ok {
			b.Fatal("not read")
		}
	}
}
