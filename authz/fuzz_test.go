package authz

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mcp-authz/mcp-authz/internal/jwstest"
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
	f.Add(jwstest.Craft(f, map[string]any{"alg": "none", "typ": "at+jwt"}, e.validClaims(), nil))
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

// FuzzParseMCPBody checks the JSON-RPC body reader against encoding/json:
// a body it reads must be valid JSON, and a decoder that matches member
// names without regard to case (Go's) must find the same method and name,
// so that no server built on such a decoder sees another message than the
// rules did. Header decoding is fuzzed alongside: a value it accepts is a
// valid method and UTF-8 text.
func FuzzParseMCPBody(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`,
		`{"method":"resources/read","params":{"uri":"file:///x","name":"y"}}`,
		`[{"method":"tools/list"},{"id":1,"result":{}}]`,
		`{"method":"a","Method":"b"}`,
		`{"method":"a","paramſ":{"name":"x"}}`,
		`{"\u006dethod":"tools\/call","params":{"name":"\ud83d\ude00"}}`,
		`{"method":"a","params":{"a":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}}`,
	} {
		f.Add([]byte(s), "", "")
	}
	f.Add([]byte(`{"method":"tools/call","params":{"name":"x"}}`), "tools/call", "x")
	f.Fuzz(func(t *testing.T, body []byte, method, name string) {
		h, hok := readMCPHeaders(func(n string) string {
			return map[string]string{HeaderMCPMethod: method, HeaderMCPName: name}[n]
		})
		if hok && ((h.hasMethod && !validMethod(h.method)) ||
			(h.hasName && (h.name == "" || !utf8.ValidString(h.name)))) {
			t.Fatalf("readMCPHeaders(%q, %q) = %+v", method, name, h)
		}
		calls, batch, ok := parseMCPBody(body, nil)
		if !ok {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("read invalid JSON %q", body)
		}
		if !batch {
			checkAgainstStdlib(t, body, calls[0])
			return
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(body, &elems); err != nil || len(elems) != len(calls) {
			t.Fatalf("batch %q: %d elements, %v; read %d", body, len(elems), err, len(calls))
		}
		for i, e := range elems {
			checkAgainstStdlib(t, e, calls[i])
		}
	})
}

// checkAgainstStdlib decodes one message with encoding/json, which matches
// member names case-insensitively and keeps the last duplicate, and compares
// it with what parseMCPBody read.
func checkAgainstStdlib(t *testing.T, msg []byte, c mcpCall) {
	t.Helper()
	var m struct {
		Method *string          `json:"method"`
		Params *json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		t.Fatalf("read %q, which encoding/json refuses: %v", msg, err)
	}
	if !c.methodKnown || (m.Method == nil && c.method != "") ||
		(m.Method != nil && *m.Method != c.method) {
		t.Fatalf("%q: read %+v, encoding/json method %v", msg, c, m.Method)
	}
	if m.Method == nil {
		return // not a request: it addresses nothing
	}
	if m.Params == nil || (*m.Params)[0] != '{' {
		if c.nameSent {
			t.Fatalf("%q: read name %q without params object", msg, c.name)
		}
		return
	}
	var p struct {
		Name *string `json:"name"`
		URI  *string `json:"uri"`
	}
	if err := json.Unmarshal(*m.Params, &p); err != nil {
		return // a non-string name or uri the method does not address
	}
	f := p.Name
	if nameIsURI(c.method) {
		f = p.URI
	}
	if (f != nil) != c.nameSent || (f != nil && *f != c.name) {
		t.Fatalf("%q: read %+v, encoding/json name %v", msg, c, f)
	}
}
