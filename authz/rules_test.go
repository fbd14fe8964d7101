package authz

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	ruleResource = "https://tools.example.com/mcp"
	ruleMeta     = "https://tools.example.com/.well-known/oauth-protected-resource/mcp"
)

// ruleConfig is the configuration of the package documentation's example.
func ruleConfig() Config {
	cfg := testConfig()
	cfg.Resources = append(cfg.Resources, Resource{
		URL:            ruleResource,
		Scopes:         []string{"mcp:read", "mcp:write", "mcp:admin"},
		RequiredScopes: []string{"mcp:read"},
		Rules: []ScopeRule{
			{Method: "tools/call", Tool: "delete_everything", Scopes: []string{"mcp:admin"}},
			{Method: "tools/call", Scopes: []string{"mcp:write"}},
			{Method: "resources/read", Tool: "file:///secret", Scopes: []string{"mcp:admin"}},
			{Method: "*", Tool: "audit", Scopes: []string{"mcp:audit"}},
		},
	})
	return cfg
}

// mcpPost is a POST to the rule resource with the given headers (name,
// value pairs) and body.
func mcpPost(tok, body string, hdr ...string) *Request {
	req := &Request{DecisionID: "d1", Method: "POST", Scheme: "https",
		Host: "tools.example.com", Path: "/mcp", Authorization: []string{bearer(tok)}}
	if body != "" {
		req.Body = []byte(body)
	}
	m := map[string]string{}
	for i := 0; i+1 < len(hdr); i += 2 {
		m[hdr[i]] = hdr[i+1]
	}
	req.Header = func(name string) string { return m[name] }
	return req
}

func call(method, params string) string {
	if params == "" {
		return `{"jsonrpc":"2.0","id":1,"method":"` + method + `"}`
	}
	return `{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":` + params + `}`
}

func b64Header(s string) string {
	return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
}

func TestCheckScopeRules(t *testing.T) {
	e := newTestEnvConfig(t, ruleConfig())
	e.putClient(t, "client-1", false)
	token := func(scope string) string {
		tok, _ := e.mint(t, func(c *AccessClaims) { c.Audience, c.Scope = ruleResource, scope })
		return tok
	}
	read := token("mcp:read")
	write := token("mcp:read mcp:write")
	admin := token("mcp:read mcp:write mcp:admin")
	all := token("mcp:read mcp:write mcp:admin mcp:audit")

	const (
		mName   = "mcp-method"
		nName   = "mcp-name"
		del     = "delete_everything"
		allNeed = "mcp:read mcp:write mcp:admin mcp:audit"
	)
	insufficient := func(scope string) *Decision {
		return &Decision{Reason: ReasonInsufficientScope, Status: 403, Resource: ruleResource,
			WWWAuthenticate: `Bearer error="insufficient_scope", scope="` + scope +
				`", resource_metadata="` + ruleMeta +
				`", error_description="the access token lacks a required scope"`}
	}
	allow := func(scope string) *Decision {
		return &Decision{Allow: true, Reason: ReasonOK, Status: 200, ClientID: "client-1",
			Subject: "alice", Scope: scope, Resource: ruleResource}
	}
	mismatch := &Decision{Reason: ReasonMCPHeaderMismatch, Status: 400, Resource: ruleResource,
		WWWAuthenticate: `Bearer resource_metadata="` + ruleMeta + `", scope="mcp:read", ` +
			`error="invalid_request", error_description="the Mcp-Method or Mcp-Name header ` +
			`is malformed or disagrees with the body"`}
	deep := strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70)
	tests := []struct {
		name string
		req  *Request
		want *Decision
	}{
		{"list with read", mcpPost(read, call("tools/list", ""), mName, "tools/list"),
			allow("mcp:read")},
		{"list by body only", mcpPost(read, call("tools/list", "")), allow("mcp:read")},
		{"list by header only", mcpPost(read, "", mName, "tools/list"), allow("mcp:read")},
		{"call needs write", mcpPost(read, call("tools/call", `{"name":"echo"}`),
			mName, "tools/call", nName, "echo"), insufficient("mcp:read mcp:write")},
		{"call with write", mcpPost(write, call("tools/call", `{"name":"echo"}`),
			mName, "tools/call", nName, "echo"), allow("mcp:read mcp:write")},
		{"delete needs admin and write", mcpPost(write, call("tools/call", `{"name":"`+del+`"}`),
			mName, "tools/call", nName, del), insufficient("mcp:read mcp:write mcp:admin")},
		{"delete with admin", mcpPost(admin, call("tools/call", `{"name":"`+del+`"}`)),
			allow("mcp:read mcp:write mcp:admin")},
		{"delete by header only", mcpPost(write, "", mName, "tools/call", nName, del),
			insufficient("mcp:read mcp:write mcp:admin")},
		{"tool name is case-sensitive", mcpPost(write,
			call("tools/call", `{"name":"Delete_Everything"}`)), allow("mcp:read mcp:write")},
		{"escaped method and name", mcpPost(write,
			`{"method":"tools\/call","params":{"name":"delete\u005feverything"}}`),
			insufficient("mcp:read mcp:write mcp:admin")},
		{"resource uri rule", mcpPost(write, call("resources/read",
			`{"uri":"file:///secret","name":"harmless"}`)), insufficient("mcp:read mcp:admin")},
		{"resource name ignored for uri", mcpPost(write, call("resources/read",
			`{"uri":"file:///public","name":"file:///secret"}`)), allow("mcp:read mcp:write")},
		{"star rule on a named prompt", mcpPost(admin, call("prompts/get", `{"name":"audit"}`)),
			insufficient("mcp:read mcp:audit")},
		{"star rule with call rule", mcpPost(read, call("tools/call", `{"name":"audit"}`)),
			insufficient("mcp:read mcp:write mcp:audit")},
		{"response needs only required", mcpPost(read, `{"jsonrpc":"2.0","id":7,"result":{}}`),
			allow("mcp:read")},
		{"get stream needs only required", func() *Request {
			r := mcpPost(read, "")
			r.Method = "GET"
			return r
		}(), allow("mcp:read")},
		{"get naming a tool is read like post", func() *Request {
			r := mcpPost(read, "", mName, "tools/call", nName, del)
			r.Method = "GET"
			return r
		}(), insufficient("mcp:read mcp:write mcp:admin")},
		{"get with a message body is read like post", func() *Request {
			r := mcpPost(write, call("tools/call", `{"name":"`+del+`"}`))
			r.Method = "GET"
			return r
		}(), insufficient("mcp:read mcp:write mcp:admin")},
		{"delete session needs only required", func() *Request {
			r := mcpPost(read, "")
			r.Method = "DELETE"
			return r
		}(), allow("mcp:read")},
		{"put is read like post", func() *Request {
			r := mcpPost(write, call("tools/call", `{"name":"`+del+`"}`))
			r.Method = "PUT"
			return r
		}(), insufficient("mcp:read mcp:write mcp:admin")},

		// What cannot be learned needs what it could be.
		{"post without header or body", mcpPost(admin, ""), insufficient(allNeed)},
		{"post without header or body, all scopes", mcpPost(all, ""),
			allow("mcp:read mcp:write mcp:admin mcp:audit")},
		{"call header without name", mcpPost(write, "", mName, "tools/call"),
			insufficient("mcp:read mcp:write mcp:admin mcp:audit")},
		{"call body without name", mcpPost(write, call("tools/call", `{}`)),
			insufficient("mcp:read mcp:write mcp:admin mcp:audit")},
		{"name header alone", mcpPost(admin, "", nName, "echo"), insufficient(allNeed)},
		{"joined name headers", mcpPost(write, "", mName, "tools/call", nName, "echo,"+del),
			insufficient("mcp:read mcp:write mcp:admin mcp:audit")},
		{"partial body", func() *Request {
			r := mcpPost(admin, call("tools/list", ""), mName, "tools/list")
			r.BodyPartial = true
			return r
		}(), insufficient(allNeed)},
		{"malformed body", mcpPost(admin, `{"method":"tools/list",}`, mName, "tools/list"),
			insufficient(allNeed)},
		{"deeply nested body", mcpPost(admin,
			`{"method":"tools/list","params":{"x":`+deep+`}}`), insufficient(allNeed)},
		{"duplicate method", mcpPost(admin, `{"method":"tools/list","method":"tools/call"}`),
			insufficient(allNeed)},
		{"method in another case", mcpPost(admin,
			`{"method":"tools/list","Method":"tools/call","params":{"name":"x"}}`),
			insufficient(allNeed)},
		{"params with long s", mcpPost(admin,
			`{"method":"tools/call","params":{"name":"x"},"param\u017f":{"name":"`+del+`"}}`),
			insufficient(allNeed)},
		{"uri with dotless i", mcpPost(admin, `{"method":"resources/read",`+
			`"params":{"uri":"file:///x","ur\u0131":"file:///secret"}}`), insufficient(allNeed)},
		{"name not a string", mcpPost(admin, call("tools/call", `{"name":["x"]}`)),
			insufficient(allNeed)},
		{"lone surrogate in name", mcpPost(admin, call("tools/call", `{"name":"\ud800"}`)),
			insufficient(allNeed)},

		// Batches need the union of their messages.
		{"batch", mcpPost(write, `[`+call("tools/list", "")+`,`+
			call("tools/call", `{"name":"`+del+`"}`)+`]`),
			insufficient("mcp:read mcp:write mcp:admin")},
		{"batch allowed", mcpPost(admin, `[`+call("tools/list", "")+`,`+
			call("tools/call", `{"name":"`+del+`"}`)+`]`), allow("mcp:read mcp:write mcp:admin")},
		{"batch with a header", mcpPost(admin, `[`+call("tools/list", "")+`]`,
			mName, "tools/list"), mismatch},

		// Headers that disagree with the body are refused, whatever the token.
		{"method header disagrees", mcpPost(all, call("tools/call", `{"name":"echo"}`),
			mName, "tools/list"), mismatch},
		{"name header disagrees", mcpPost(all, call("tools/call", `{"name":"`+del+`"}`),
			mName, "tools/call", nName, "echo"), mismatch},
		{"name header without body name", mcpPost(all, call("tools/list", ""),
			mName, "tools/list", nName, "echo"), mismatch},
		{"method header case", mcpPost(all, call("tools/list", ""), mName, "Tools/List"),
			mismatch},
		{"header on a response", mcpPost(all, `{"id":1,"result":{}}`, mName, "tools/list"),
			mismatch},
		{"method header with space", mcpPost(all, "", mName, "tools/list x"), mismatch},
		{"name header with control", mcpPost(all, "", mName, "tools/call", nName, "a\x01"),
			mismatch},
		{"name header bad base64", mcpPost(all, "", mName, "tools/call", nName, "=?base64?*?="),
			mismatch},
		{"base64 name header", mcpPost(write, call("tools/call", `{"name":"caf\u00e9"}`),
			mName, "tools/call", nName, b64Header("café")), allow("mcp:read mcp:write")},
		{"base64 name header for a rule", mcpPost(write, "", mName, "tools/call",
			nName, b64Header(del)), insufficient("mcp:read mcp:write mcp:admin")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.decider.Check(t.Context(), tt.req)
			checkBody(t, got)
			got.Body = nil
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCheckScopeRulesChallenge checks that a request without a token is
// challenged with the scopes its message needs.
func TestCheckScopeRulesChallenge(t *testing.T) {
	e := newTestEnvConfig(t, ruleConfig())
	tests := []struct {
		name  string
		req   *Request
		scope string
	}{
		{"list", mcpPost("", call("tools/list", "")), "mcp:read"},
		{"delete", mcpPost("", call("tools/call", `{"name":"delete_everything"}`)),
			"mcp:read mcp:write mcp:admin"},
		{"unknown", mcpPost("", ""), "mcp:read mcp:write mcp:admin mcp:audit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Authorization = nil
			got := e.decider.Check(t.Context(), tt.req)
			want := `Bearer resource_metadata="` + ruleMeta + `", scope="` + tt.scope + `"`
			if got.Reason != ReasonNoToken || got.WWWAuthenticate != want {
				t.Errorf("Check = %s %q; want %s %q", got.Reason, got.WWWAuthenticate,
					ReasonNoToken, want)
			}
		})
	}
}

// TestCheckHeaderMismatchWithoutRules checks that a resource without rules
// still refuses headers that disagree with the body, and ignores bodies it
// cannot read.
func TestCheckHeaderMismatchWithoutRules(t *testing.T) {
	e := newTestEnv(t)
	e.putClient(t, "client-1", false)
	tok, _ := e.mint(t, nil)
	post := func(body string, hdr ...string) *Request {
		r := mcpRequest(bearer(tok))
		r.Body = []byte(body)
		m := map[string]string{}
		for i := 0; i+1 < len(hdr); i += 2 {
			m[hdr[i]] = hdr[i+1]
		}
		r.Header = func(n string) string { return m[n] }
		return r
	}
	tests := []struct {
		name string
		req  *Request
		want Reason
	}{
		{"agrees", post(call("tools/list", ""), "mcp-method", "tools/list"), ReasonOK},
		{"no header", post(call("tools/list", "")), ReasonOK},
		{"header only", post("", "mcp-method", "tools/list"), ReasonOK},
		{"disagrees", post(call("tools/call", `{"name":"x"}`), "mcp-method", "tools/list"),
			ReasonMCPHeaderMismatch},
		{"unreadable body", post(`{"method":`, "mcp-method", "tools/list"), ReasonOK},
		{"malformed header without body", post("", "mcp-method", "a b"), ReasonOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.decider.Check(t.Context(), tt.req); got.Reason != tt.want {
				t.Errorf("Check = %s, want %s", got.Reason, tt.want)
			}
		})
	}
}

func TestCheckCORSPreflight(t *testing.T) {
	e := newTestEnvConfig(t, ruleConfig())
	preflight := func(edit func(*Request, map[string]string)) *Request {
		h := map[string]string{"origin": "http://localhost:6274",
			"access-control-request-method":  "POST",
			"access-control-request-headers": "authorization,content-type,mcp-method"}
		r := &Request{Method: "OPTIONS", Scheme: "https", Host: "tools.example.com",
			Path: "/mcp"}
		if edit != nil {
			edit(r, h)
		}
		r.Header = func(n string) string { return h[n] }
		return r
	}
	tests := []struct {
		name string
		req  *Request
		want *Decision
	}{
		{"preflight", preflight(nil), &Decision{Allow: true, Reason: ReasonCORSPreflight,
			Status: 200, Resource: ruleResource}},
		{"with authorization", preflight(func(r *Request, _ map[string]string) {
			r.Authorization = []string{"Bearer x.y.z"}
		}), &Decision{Reason: ReasonMalformed, Status: 401}},
		{"without request method", preflight(func(_ *Request, h map[string]string) {
			delete(h, "access-control-request-method")
		}), &Decision{Reason: ReasonNoToken, Status: 401}},
		{"without origin", preflight(func(_ *Request, h map[string]string) {
			delete(h, "origin")
		}), &Decision{Reason: ReasonNoToken, Status: 401}},
		{"post with preflight headers", preflight(func(r *Request, _ map[string]string) {
			r.Method = "POST"
		}), &Decision{Reason: ReasonNoToken, Status: 401}},
		{"unknown resource", preflight(func(r *Request, _ map[string]string) {
			r.Host = "elsewhere"
		}), &Decision{Reason: ReasonUnknownResource, Status: 403}},
		{"with a message body", preflight(func(r *Request, _ map[string]string) {
			r.Body = []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call",` +
				`"params":{"name":"delete_everything"}}`)
		}), &Decision{Reason: ReasonNoToken, Status: 401}},
		{"with an mcp-method header", preflight(func(_ *Request, h map[string]string) {
			h[HeaderMCPMethod] = "tools/call"
		}), &Decision{Reason: ReasonNoToken, Status: 401}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.decider.Check(t.Context(), tt.req)
			if !tt.want.Allow {
				got = &Decision{Reason: got.Reason, Status: got.Status}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigRules(t *testing.T) {
	cfg := ruleConfig().WithDefaults()
	r, _ := cfg.Resource(ruleResource)
	want := []string{"mcp:read", "mcp:write", "mcp:admin", "mcp:audit"}
	if diff := cmp.Diff(want, r.Scopes); diff != "" {
		t.Errorf("Scopes with rule scopes (-want +got):\n%s", diff)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}

	tests := []struct {
		name string
		rule ScopeRule
	}{
		{"no method", ScopeRule{Scopes: []string{"a"}}},
		{"method with space", ScopeRule{Method: "tools/ call", Scopes: []string{"a"}}},
		{"method with comma", ScopeRule{Method: "a,b", Scopes: []string{"a"}}},
		{"tool with newline", ScopeRule{Method: "tools/call", Tool: "a\nb",
			Scopes: []string{"a"}}},
		{"tool not UTF-8", ScopeRule{Method: "tools/call", Tool: "\xff", Scopes: []string{"a"}}},
		{"no scope", ScopeRule{Method: "tools/call"}},
		{"bad scope", ScopeRule{Method: "tools/call", Scopes: []string{`a"b`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ruleConfig()
			last := &c.Resources[len(c.Resources)-1]
			last.Rules = append(last.Rules, tt.rule)
			err := c.WithDefaults().Validate()
			if err == nil || !strings.Contains(err.Error(), ruleResource) {
				t.Errorf("Validate = %v, want an error naming the resource", err)
			}
		})
	}
}

func TestParseMCPBody(t *testing.T) {
	type got struct {
		Calls []mcpCall
		OK    bool
	}
	c := func(method, name string, nameKnown, nameSent bool) mcpCall {
		return mcpCall{method: method, name: name, methodKnown: true, nameKnown: nameKnown,
			nameSent: nameSent}
	}
	nested := func(n int) string {
		return `{"method":"m","params":{"a":` + strings.Repeat("[", n-2) +
			strings.Repeat("]", n-2) + `}}`
	}
	tests := []struct {
		name, body string
		want       got
	}{
		{"call", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo",` +
			`"arguments":{"a":[1,-2.5e+3,true,false,null,"x\n"]}}}`,
			got{[]mcpCall{c("tools/call", "echo", true, true)}, true}},
		{"list", `{"method":"tools/list"}`, got{[]mcpCall{c("tools/list", "", true, false)}, true}},
		{"call without name", `{"method":"tools/call","params":null}`,
			got{[]mcpCall{c("tools/call", "", false, false)}, true}},
		{"read takes uri", ` {"method":"resources/read","params":{"name":"n","uri":"u"}} `,
			got{[]mcpCall{c("resources/read", "u", true, true)}, true}},
		{"params array", `{"method":"tools/call","params":["echo"]}`,
			got{[]mcpCall{c("tools/call", "", false, false)}, true}},
		{"response", `{"id":1,"error":{"code":-32600,"message":"x"}}`,
			got{[]mcpCall{{methodKnown: true, nameKnown: true}}, true}},
		{"escaped key", `{"\u006dethod":"tools/call","params":{"n\u0061me":"a\/b"}}`,
			got{[]mcpCall{c("tools/call", "a/b", true, true)}, true}},
		{"surrogate pair", `{"method":"tools/call","params":{"name":"\ud83d\ude00"}}`,
			got{[]mcpCall{c("tools/call", "\U0001F600", true, true)}, true}},
		{"batch", `[{"method":"a"},{"method":"b","params":{"name":"n"}}]`,
			got{[]mcpCall{c("a", "", true, false), c("b", "n", true, true)}, true}},
		{"depth limit", nested(maxJSONDepth), got{[]mcpCall{c("m", "", true, false)}, true}},
		{"too deep", nested(maxJSONDepth + 1), got{}},
		{"empty batch", `[]`, got{}},
		{"batch of scalars", `[1]`, got{}},
		{"scalar", `"tools/call"`, got{}},
		{"empty", ``, got{}},
		{"trailing data", `{"method":"a"} {"method":"b"}`, got{}},
		{"trailing comma", `{"method":"a",}`, got{}},
		{"single quotes", `{'method':'a'}`, got{}},
		{"leading zero", `{"method":"a","id":01}`, got{}},
		{"bare dot", `{"method":"a","id":1.}`, got{}},
		{"control in string", "{\"method\":\"a\tb\"}", got{}},
		{"bad escape", `{"method":"\x41"}`, got{}},
		{"short unicode escape", `{"method":"\u41"}`, got{}},
		{"unterminated", `{"method":"a`, got{}},
		{"method twice", `{"method":"a","method":"a"}`, got{}},
		{"params twice", `{"method":"a","params":{},"params":{}}`, got{}},
		{"name twice", `{"method":"a","params":{"name":"x","name":"x"}}`, got{}},
		{"upper-case method", `{"METHOD":"a"}`, got{}},
		{"kelvin sign", `{"method":"a","params":{"name":"x"}, "\u212a":1}`,
			got{[]mcpCall{c("a", "x", true, true)}, true}},
		{"long s in params", `{"method":"a","paramſ":{}}`, got{}},
		{"dotted capital i in uri", `{"method":"a","params":{"urİ":"x"}}`, got{}},
		{"method number", `{"method":1}`, got{}},
		{"invalid UTF-8 method", "{\"method\":\"a\xff\"}", got{}},
		{"lone low surrogate", `{"method":"\udc00"}`, got{}},
		{"high surrogate then letter", `{"method":"\ud800\u0041"}`, got{}},
		{"invalid UTF-8 elsewhere", "{\"method\":\"a\",\"x\":\"\xff\"}",
			got{[]mcpCall{c("a", "", true, false)}, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls, _, ok := parseMCPBody([]byte(tt.body), nil)
			if diff := cmp.Diff(tt.want, got{calls, ok},
				cmp.AllowUnexported(mcpCall{})); diff != "" {
				t.Errorf("parseMCPBody(%q) (-want +got):\n%s", tt.body, diff)
			}
		})
	}
}

func TestParseMCPBodyBatchLimit(t *testing.T) {
	batch := func(n int) []byte {
		return []byte("[" + strings.TrimSuffix(strings.Repeat(`{"method":"a"},`, n), ",") + "]")
	}
	if _, _, ok := parseMCPBody(batch(maxBatch), nil); !ok {
		t.Errorf("batch of %d refused", maxBatch)
	}
	if _, _, ok := parseMCPBody(batch(maxBatch+1), nil); ok {
		t.Errorf("batch of %d read", maxBatch+1)
	}
}

func TestReadMCPHeaders(t *testing.T) {
	tests := []struct {
		name, method, nm string
		want             mcpHeaders
		ok               bool
	}{
		{"none", "", "", mcpHeaders{}, true},
		{"plain", "tools/call", "echo",
			mcpHeaders{method: "tools/call", name: "echo", hasMethod: true, hasName: true}, true},
		{"base64 name", "tools/call", b64Header(" café "),
			mcpHeaders{method: "tools/call", name: " café ", hasMethod: true, hasName: true}, true},
		{"base64 method", b64Header("tools/list"), "",
			mcpHeaders{method: "tools/list", hasMethod: true}, true},
		{"base64 not UTF-8", "", "=?base64?/w==?=", mcpHeaders{}, false},
		{"base64 unpadded", "", "=?base64?YQ?=", mcpHeaders{}, false},
		{"base64 empty", "", "=?base64??=", mcpHeaders{}, false},
		{"upper-case markers are plain", "", "=?BASE64?YQ==?=",
			mcpHeaders{name: "=?BASE64?YQ==?=", hasName: true}, true},
		{"non-ASCII name", "", "café", mcpHeaders{}, false},
		{"method with comma", "tools/list,tools/call", "", mcpHeaders{}, false},
		{"method base64 with space", b64Header("tools/ list"), "", mcpHeaders{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{HeaderMCPMethod: tt.method, HeaderMCPName: tt.nm}
			got, ok := readMCPHeaders(func(n string) string { return h[n] })
			if ok != tt.ok || (ok && got != tt.want) {
				t.Errorf("readMCPHeaders = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
