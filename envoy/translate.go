package envoy

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/mcp-authz/mcp-authz/authz"
)

// headerPartialBody is the header Envoy adds when it sends only the first
// max_request_bytes of the body.
const headerPartialBody = "x-envoy-auth-partial-body"

// envoyHeaders reads the request headers of a CheckRequest. Envoy fills
// either the headers map (lower-cased keys, duplicates joined with commas) or,
// with encode_raw_headers, header_map (one entry per header line, duplicates
// kept apart). When header_map holds any entry it is used alone, since it is
// the exact form; otherwise the map is used.
type envoyHeaders struct {
	m   map[string]string
	raw []*corev3.HeaderValue
}

func newEnvoyHeaders(h *authv3.AttributeContext_HttpRequest) envoyHeaders {
	raw := h.GetHeaderMap().GetHeaders()
	if len(raw) > 0 {
		return envoyHeaders{raw: raw}
	}
	return envoyHeaders{m: h.GetHeaders()}
}

// get returns the value of the lower-cased header name, or "". Repeated
// header lines are joined with commas, as Envoy's headers map joins them, so
// a decision never sees only the first of two disagreeing values (a client
// could otherwise send "Mcp-Name: echo" and "Mcp-Name: delete_everything"
// and have the upstream act on the second).
func (e envoyHeaders) get(name string) string {
	if e.raw == nil {
		return e.m[name]
	}
	var joined string
	found := false
	for _, h := range e.raw {
		if !strings.EqualFold(h.GetKey(), name) {
			continue
		}
		if found {
			joined += "," + rawValue(h)
		} else {
			joined, found = rawValue(h), true
		}
	}
	return joined
}

// or returns v, or the header name when v is "".
func (e envoyHeaders) or(v, name string) string {
	if v != "" {
		return v
	}
	return e.get(name)
}

// values returns every value of the lower-cased header name, in order. From
// the headers map that is at most one value, which may hold several header
// lines joined by commas; it is passed on as it is.
func (e envoyHeaders) values(name string) []string {
	if e.raw == nil {
		if v, ok := e.m[name]; ok {
			return []string{v}
		}
		return nil
	}
	var out []string
	for _, h := range e.raw {
		if strings.EqualFold(h.GetKey(), name) {
			out = append(out, rawValue(h))
		}
	}
	return out
}

// rawValue returns a header_map entry's value: raw_value as Envoy fills it,
// or value from older senders.
func rawValue(h *corev3.HeaderValue) string {
	if b := h.GetRawValue(); len(b) > 0 {
		return string(b)
	}
	return h.GetValue()
}

// firstNonEmpty returns the first of vs that is not "".
func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// requestFromCheck translates an Envoy CheckRequest into an authz.Request.
// Each field comes from the attribute Envoy sets for it, falling back to the
// matching header (pseudo-headers included) when the attribute is empty:
//
//	Method             http.method, :method
//	Scheme             http.scheme, :scheme, x-forwarded-proto
//	Host               http.host, :authority, host
//	Path               http.path, :path
//	DecisionID         http.id, x-request-id, else newID()
//	Authorization      every authorization header value (see envoyHeaders)
//	Body               http.raw_body, else http.body
//	BodyPartial        x-envoy-auth-partial-body: true
//	ContextExtensions  attributes.context_extensions (shared, not copied)
func requestFromCheck(cr *authv3.CheckRequest, newID func() string) *authz.Request {
	attrs := cr.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	hdr := newEnvoyHeaders(h)

	req := &authz.Request{
		DecisionID:        hdr.or(h.GetId(), "x-request-id"),
		Method:            hdr.or(h.GetMethod(), ":method"),
		Scheme:            hdr.or(h.GetScheme(), ":scheme"),
		Host:              hdr.or(hdr.or(h.GetHost(), ":authority"), "host"),
		Path:              hdr.or(h.GetPath(), ":path"),
		Authorization:     hdr.values("authorization"),
		Header:            hdr.get,
		BodyPartial:       strings.EqualFold(hdr.get(headerPartialBody), "true"),
		ContextExtensions: attrs.GetContextExtensions(),
	}
	if req.Scheme == "" {
		req.Scheme = firstForwarded(hdr.get("x-forwarded-proto"))
	}
	if req.DecisionID == "" {
		req.DecisionID = newID()
	}

	switch {
	case len(h.GetRawBody()) > 0:
		req.Body = h.GetRawBody()
	case h.GetBody() != "":
		req.Body = []byte(h.GetBody())
	}
	return req
}

// firstForwarded returns the first element of a comma-separated
// X-Forwarded-* value, which a chain of proxies may have appended to.
func firstForwarded(v string) string {
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}
