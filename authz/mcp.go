package authz

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"
)

// Request headers that name the MCP message of a POST (MCP 2026-07-28).
const (
	HeaderMCPMethod = "mcp-method"
	HeaderMCPName   = "mcp-name"
)

// MaxMCPBody is the largest request body the decision reads. A longer body
// is treated like a partial one: its message is unknown.
const MaxMCPBody = 1 << 20

// maxBatch bounds the messages of a JSON-RPC batch the decision reads; a
// longer batch is unknown.
const maxBatch = 64

// mcpCall is what the decision learned about one MCP message: its method
// and the tool, prompt or resource it addresses. Strings may alias the
// request body and must not outlive the decision.
type mcpCall struct {
	method, name string
	methodKnown  bool
	nameKnown    bool // name is the message's name ("" when it has none)
	nameSent     bool // the message carries the name field itself
}

// requiresName reports whether messages of method address a named tool,
// prompt or resource, so that a message without the name cannot be placed.
func requiresName(method string) bool {
	switch method {
	case "tools/call", "prompts/get", "resources/read", "resources/subscribe",
		"resources/unsubscribe":
		return true
	}
	return false
}

// nameIsURI reports whether method names its target by params.uri rather
// than params.name.
func nameIsURI(method string) bool {
	switch method {
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		return true
	}
	return false
}

// carriesMessage reports whether req may carry a JSON-RPC message. GET (the
// server's event stream), HEAD and DELETE (the end of a session) carry none
// unless they come with a body or an MCP method header anyway; every other
// method is treated like POST, so that an upstream that accepts messages on
// other methods, or reads a GET body, cannot be used to slip past the rules.
func carriesMessage(req *Request) bool {
	switch req.Method {
	case "GET", "HEAD", "DELETE":
		return len(req.Body) > 0 || req.BodyPartial || (req.Header != nil &&
			(req.Header(HeaderMCPMethod) != "" || req.Header(HeaderMCPName) != ""))
	}
	return true
}

// mcpHeaders are the Mcp-Method and Mcp-Name headers of a request, decoded.
type mcpHeaders struct {
	method, name       string
	hasMethod, hasName bool
}

// readMCPHeaders reads and decodes the Mcp-Method and Mcp-Name headers. It
// reports false for a value that is not valid: a method that is not
// printable ASCII without spaces or commas, or a name that is neither
// printable ASCII nor the "=?base64?...?=" form of UTF-8 text.
func readMCPHeaders(header func(string) string) (mcpHeaders, bool) {
	var h mcpHeaders
	if header == nil {
		return h, true
	}
	if v := header(HeaderMCPMethod); v != "" {
		m, ok := decodeHeaderValue(v)
		if !ok || !validMethod(m) {
			return h, false
		}
		h.method, h.hasMethod = m, true
	}
	if v := header(HeaderMCPName); v != "" {
		n, ok := decodeHeaderValue(v)
		if !ok || n == "" {
			return h, false
		}
		h.name, h.hasName = n, true
	}
	return h, true
}

// Markers of an MCP header value carried as base64 (MCP 2026-07-28): values
// with characters outside printable ASCII, or with leading or trailing
// spaces, are sent as "=?base64?<standard base64 of the UTF-8 text>?=".
const (
	b64HeaderPrefix = "=?base64?"
	b64HeaderSuffix = "?="
)

// decodeHeaderValue decodes an MCP header value: the base64 form, or plain
// printable ASCII.
func decodeHeaderValue(v string) (string, bool) {
	if strings.HasPrefix(v, b64HeaderPrefix) && strings.HasSuffix(v, b64HeaderSuffix) &&
		len(v) >= len(b64HeaderPrefix)+len(b64HeaderSuffix) {
		raw := v[len(b64HeaderPrefix) : len(v)-len(b64HeaderSuffix)]
		b, err := base64.StdEncoding.Strict().DecodeString(raw)
		if err != nil || !utf8.Valid(b) {
			return "", false
		}
		return string(b), true
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' || c >= 0x7f {
			return "", false
		}
	}
	return v, true
}

// callFromHeaders is the message a POST without a body names in its
// headers. Without Mcp-Method the message is unknown. A name holding a
// comma may be two joined Mcp-Name headers, so it counts as unknown.
func callFromHeaders(h *mcpHeaders) mcpCall {
	if !h.hasMethod {
		return mcpCall{}
	}
	c := mcpCall{method: h.method, methodKnown: true}
	switch {
	case h.hasName && !strings.Contains(h.name, ","):
		c.name, c.nameKnown, c.nameSent = h.name, true, true
	case !h.hasName:
		c.nameKnown = !requiresName(h.method)
	}
	return c
}

// agrees reports whether the headers describe the body's message c: a
// header that is present must equal what the body says.
func (h *mcpHeaders) agrees(c *mcpCall) bool {
	if h.hasMethod && h.method != c.method {
		return false
	}
	if h.hasName && (!c.nameSent || h.name != c.name) {
		return false
	}
	return true
}

// needOf returns what req needs from resource p: its RequiredScopes and the
// scopes of the rules its MCP message matches. It reports
// ReasonMCPHeaderMismatch when the Mcp-Method or Mcp-Name header is
// malformed or disagrees with the body.
//
// Where the message comes from, and what an unknown one needs, is described
// in the package documentation ("Scope rules").
func (p *protected) needOf(req *Request) (*need, Reason) {
	if (p.rules == nil && (len(req.Body) == 0 || req.Header == nil)) ||
		!carriesMessage(req) {
		return p.every, ReasonOK
	}
	h, ok := readMCPHeaders(req.Header)
	if !ok {
		return p.every, ReasonMCPHeaderMismatch
	}
	if len(req.Body) == 0 {
		if p.rules == nil {
			return p.every, ReasonOK
		}
		c := callFromHeaders(&h)
		return p.rules.lookup(&c), ReasonOK
	}
	if p.rules == nil && !h.hasMethod && !h.hasName {
		return p.every, ReasonOK
	}

	var buf [1]mcpCall
	calls, batch, ok := readBody(req, buf[:0])
	switch {
	case !ok && p.rules == nil:
		return p.every, ReasonOK // nothing to compare; the server refuses the body
	case !ok:
		return p.rules.unknown, ReasonOK
	case !batch:
		if !h.agrees(&calls[0]) {
			return p.every, ReasonMCPHeaderMismatch
		}
		if p.rules == nil {
			return p.every, ReasonOK
		}
		return p.rules.lookup(&calls[0]), ReasonOK
	case h.hasMethod || h.hasName:
		return p.every, ReasonMCPHeaderMismatch // one header cannot describe a batch
	case p.rules == nil:
		return p.every, ReasonOK
	}
	return p.rules.lookupBatch(calls), ReasonOK
}

// readBody reads the MCP messages of a request body into calls. It reports
// false when the body cannot be read completely and unambiguously: cut
// short by the proxy, larger than MaxMCPBody, not strict JSON, nested too
// deep, not a JSON-RPC message or batch, or ambiguous (see parseMCPBody).
func readBody(req *Request, calls []mcpCall) (_ []mcpCall, batch, ok bool) {
	if req.BodyPartial || len(req.Body) > MaxMCPBody {
		return nil, false, false
	}
	return parseMCPBody(req.Body, calls)
}

// isPreflight reports whether req is a browser's CORS preflight: OPTIONS
// with Origin and Access-Control-Request-Method and without credentials.
// Preflights never carry credentials, so they cannot be authorized; they
// are let through without identity so that the server (or a CORS filter
// after this one) answers them and browser clients can reach the resource.
// A request with a body or an MCP method header is not a preflight, whatever
// else it carries: it could deliver a message to an upstream that reads
// OPTIONS bodies.
func isPreflight(req *Request) bool {
	return req.Method == "OPTIONS" && len(req.Authorization) == 0 && req.Header != nil &&
		len(req.Body) == 0 && !req.BodyPartial &&
		req.Header("access-control-request-method") != "" && req.Header("origin") != "" &&
		req.Header(HeaderMCPMethod) == "" && req.Header(HeaderMCPName) == ""
}
