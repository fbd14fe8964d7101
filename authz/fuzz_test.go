package authz

import (
	"strings"
	"testing"
)

// FuzzBearerToken checks that bearer extraction never returns a token that
// is not a b64token taken verbatim from a single, comma-free value.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "Bearer a, Bearer b", "Basic x",
		"Bearer", " Bearer\t x== ", "Bearer a=b", "Bearer \x00"} {
		f.Add(s, "")
	}
	f.Add("Bearer a", "Bearer b")
	f.Fuzz(func(t *testing.T, v1, v2 string) {
		values := []string{v1}
		if v2 != "" {
			values = append(values, v2)
		}
		tok, reason := bearerToken(values)
		switch reason {
		case ReasonOK:
			if len(values) != 1 || !isB64Token(tok) || !strings.Contains(v1, tok) ||
				strings.Contains(v1, ",") {
				t.Fatalf("bearerToken(%q) = %q accepted", values, tok)
			}
		case ReasonNoToken, ReasonMalformed, ReasonMultipleTokens:
			if tok != "" {
				t.Fatalf("bearerToken(%q) = %q with reason %q", values, tok, reason)
			}
		default:
			t.Fatalf("bearerToken(%q): unexpected reason %q", values, reason)
		}
	})
}

// FuzzVerify feeds arbitrary tokens to Verify and to a full decision: they
// must never panic, and only a token signed by the registry's key may pass.
func FuzzVerify(f *testing.F) {
	e := newTestEnv(f)
	e.putClient(f, "client-1", false)
	tok, _ := e.mint(f, nil)
	f.Add(tok)
	f.Add(craft(f, map[string]any{"alg": "none", "typ": "at+jwt"}, e.validClaims(), nil))
	f.Add(strings.Replace(tok, ".", "..", 1))
	f.Fuzz(func(t *testing.T, raw string) {
		c, reason, err := e.tokens.Verify(raw, e.clock.now())
		if (reason == ReasonOK) != (err == nil) || (reason == ReasonOK) != (c != nil) {
			t.Fatalf("Verify = %v, %q, %v: inconsistent", c, reason, err)
		}
		if reason == ReasonOK {
			if c.Issuer != testIssuer {
				t.Fatalf("Verify accepted %q with claims %+v", raw, c)
			}
			var hdr joseHeader
			h, _, _ := strings.Cut(raw, ".")
			if err := decodeSegment(h, &hdr); err != nil || e.keys.lookup(hdr.Kid) == nil {
				t.Fatalf("Verify accepted %q without a known key", raw)
			}
		}
		d := e.decider.Check(t.Context(), mcpRequest("Bearer "+raw))
		if d.Status == 0 || (d.Allow && reason != ReasonOK) {
			t.Fatalf("Check(%q) = %+v after Verify %q", raw, d, reason)
		}
	})
}
