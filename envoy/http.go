package envoy

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
)

// maxCheckBody is how much of a check request's body is read and handed to
// the Checker (Envoy's http_service mode can forward the body).
const maxCheckBody = 64 << 10

// HeaderRemove is the header that tells Envoy's http_service mode which
// request headers to drop before the request goes upstream.
const HeaderRemove = "x-envoy-auth-headers-to-remove"

// httpHandler answers HTTP authorization subrequests (see NewHTTPHandler).
type httpHandler struct {
	checker Checker
	logger  *slog.Logger
	prefix  string
	opts    Options
	ids     *idSource
}

// NewHTTPHandler returns a handler that answers HTTP authorization
// subrequests from Envoy's http_service mode, nginx auth_request, Caddy
// forward_auth and Traefik forwardAuth by asking checker.
//
// The original request is read from these sources, the first one present
// winning:
//
//	method  X-Original-Method (nginx), X-Forwarded-Method (Caddy, Traefik),
//	        the subrequest's method (Envoy)
//	path    X-Original-URI (nginx), X-Forwarded-Uri (Caddy, Traefik),
//	        the subrequest's path with prefix cut off (Envoy's path_prefix)
//	host    X-Original-Host (nginx), X-Forwarded-Host (Caddy, Traefik),
//	        the Host header (Envoy, and nginx when it keeps Host)
//	scheme  X-Forwarded-Proto, else https on a TLS connection, else http
//	id      X-Request-Id, else a generated one
//
// Authorization values are passed on separately, as the proxy sent them.
// The proxy must set these headers itself, overwriting any copies from the
// client: a client that can choose X-Forwarded-Host can choose the resource
// its token is checked against. (Envoy sends only the headers its
// allowed_headers lists; keep the X-Original-* and X-Forwarded-* names out of
// it.)
//
// When neither X-Original-URI nor X-Forwarded-Uri is present, the request
// path must start with prefix (a path segment boundary follows it), else the
// handler answers 404. Mount the handler at prefix and at prefix+"/" without
// http.StripPrefix; an empty prefix hands the whole path on.
//
// An allowed request gets 200 with the x-mcp-client-id, x-mcp-subject and
// x-mcp-scope headers and "x-envoy-auth-headers-to-remove: authorization". A
// denied one gets the Decision's status (401, 403), its WWW-Authenticate and
// its JSON body. A 5xx is answered only when no Decision could be had (an
// expired request context, a failed Checker), never for a bad token: proxies
// read 5xx as an outage.
func NewHTTPHandler(checker Checker, logger *slog.Logger, prefix string,
	opts ...Options) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return &httpHandler{
		checker: checker,
		logger:  logger.With("component", "envoy.http"),
		prefix:  strings.TrimSuffix(prefix, "/"),
		opts:    merge(opts),
		ids:     newIDSource(),
	}
}

// ServeHTTP answers one authorization subrequest.
func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	req, ok := h.request(r)
	if !ok {
		http.NotFound(w, r)
		return
	}

	d := decide(r.Context(), h.checker, req, h.logger)
	if d.Allow {
		h.writeAllow(w, req.DecisionID, d)
	} else {
		writeDeny(w, d)
	}
	observe(r.Context(), h.logger, &h.opts, req.DecisionID, d, start)
}

// request translates a subrequest into an authz.Request. It reports false
// when the original path can be found neither in a header nor after prefix.
func (h *httpHandler) request(r *http.Request) (*authz.Request, bool) {
	path := firstNonEmpty(r.Header.Get("X-Original-URI"), r.Header.Get("X-Forwarded-Uri"))
	if path == "" {
		var ok bool
		if path, ok = cutPrefix(requestURI(r), h.prefix); !ok {
			return nil, false
		}
	}

	host := firstNonEmpty(r.Header.Get("X-Original-Host"),
		firstForwarded(r.Header.Get("X-Forwarded-Host")), r.Host)
	scheme := firstForwarded(r.Header.Get("X-Forwarded-Proto"))
	if scheme == "" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}

	req := &authz.Request{
		DecisionID: r.Header.Get("X-Request-Id"),
		Method: firstNonEmpty(r.Header.Get("X-Original-Method"),
			r.Header.Get("X-Forwarded-Method"), r.Method),
		Scheme:        scheme,
		Host:          host,
		Path:          path,
		Authorization: r.Header.Values("Authorization"),
		Header:        httpHeader(r, host),
		BodyPartial:   strings.EqualFold(r.Header.Get(headerPartialBody), "true"),
	}
	if req.DecisionID == "" {
		req.DecisionID = h.ids.next()
	}
	req.Body, req.BodyPartial = readBody(r, req.BodyPartial)
	return req, true
}

// httpHeader returns a lookup of the subrequest's headers by lower-cased
// name; "host" answers the original host, which net/http keeps apart.
func httpHeader(r *http.Request, host string) func(string) string {
	return func(name string) string {
		if name == "host" {
			return host
		}
		// Repeated lines are joined, as Envoy's headers map joins them, so
		// the decision sees every value rather than the first.
		switch vs := r.Header.Values(name); len(vs) {
		case 0:
			return ""
		case 1:
			return vs[0]
		default:
			return strings.Join(vs, ",")
		}
	}
}

// requestURI is the subrequest's path and query, still escaped.
func requestURI(r *http.Request) string {
	u := r.URL.EscapedPath()
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		u += "?" + r.URL.RawQuery
	}
	return u
}

// cutPrefix removes prefix from uri at a path segment boundary and returns
// the rest, which always starts with "/".
func cutPrefix(uri, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(uri, prefix)
	switch {
	case !ok:
		return "", false
	case rest == "":
		return "/", true
	case rest[0] == '/':
		return rest, true
	case rest[0] == '?':
		return "/" + rest, true
	}
	return "", false
}

// readBody reads up to maxCheckBody bytes of the subrequest's body. The body
// is partial when the proxy said so or when it was longer than the limit.
func readBody(r *http.Request, partial bool) ([]byte, bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, partial
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxCheckBody+1))
	if len(b) > maxCheckBody {
		return b[:maxCheckBody], true
	}
	if err != nil {
		partial = true
	}
	if len(b) == 0 {
		return nil, partial
	}
	return b, partial
}

// writeAllow answers 200 with the identity headers; an empty identity is
// sent as an empty header so that proxies copying it overwrite the client's.
func (h *httpHandler) writeAllow(w http.ResponseWriter, decisionID string, d *authz.Decision) {
	hdr := w.Header()
	for _, id := range identities(d, decisionID, h.logger) {
		hdr[http.CanonicalHeaderKey(id.name)] = []string{id.value}
	}
	hdr.Set(HeaderRemove, "authorization")
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// writeDeny answers a denial with its status, challenge and JSON body.
func writeDeny(w http.ResponseWriter, d *authz.Decision) {
	hdr := w.Header()
	if d.WWWAuthenticate != "" && validHeaderValue(d.WWWAuthenticate) {
		hdr.Set("WWW-Authenticate", d.WWWAuthenticate)
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(denyStatus(d))
	_, _ = w.Write(denyBody(d))
}
