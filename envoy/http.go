package envoy

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
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

// The paths MountHTTPChecks serves the HTTP checks at, one per proxy family.
// Each handler reads only its own family's headers, so a header that one
// proxy passes through from the client cannot stand in for one that another
// proxy sets. The proxy paths lie outside EnvoyCheckPrefix: no original path
// that Envoy appends to its path_prefix can reach them.
const (
	// EnvoyCheckPrefix is the path_prefix for Envoy's http_service mode:
	// Envoy asks about /mcp?x=1 at /ext_authz/mcp?x=1.
	EnvoyCheckPrefix = "/ext_authz"
	// NginxCheckPath is the URI that nginx's auth_request location proxies
	// to (see NginxAuthRequest).
	NginxCheckPath = "/check/nginx"
	// ForwardAuthCheckPath is the URI of Caddy's forward_auth and the address
	// path of Traefik's forwardAuth (see ForwardAuth).
	ForwardAuthCheckPath = "/check/forward"
)

// HeaderConvention names the headers in which a proxy tells the HTTP check
// which request it asks about (see NewProxyCheckHandler).
type HeaderConvention int

const (
	// conventionEnvoy is Envoy's http_service mode (NewHTTPHandler): the
	// original request is the subrequest itself, its path behind a prefix.
	conventionEnvoy HeaderConvention = iota

	// NginxAuthRequest is nginx auth_request's convention: the original
	// request in X-Original-Method, X-Original-URI and X-Original-Host (the
	// Host header when X-Original-Host is absent), which the check location
	// sets with proxy_set_header.
	NginxAuthRequest

	// ForwardAuth is the convention of Caddy's forward_auth and Traefik's
	// forwardAuth: the original request in X-Forwarded-Method,
	// X-Forwarded-Uri and X-Forwarded-Host (the first of a list; the Host
	// header when absent), which the proxy sets itself.
	ForwardAuth
)

// String returns the convention's name as logs show it.
func (c HeaderConvention) String() string {
	switch c {
	case conventionEnvoy:
		return "envoy_http_service"
	case NginxAuthRequest:
		return "nginx_auth_request"
	case ForwardAuth:
		return "forward_auth"
	}
	return "HeaderConvention(" + strconv.Itoa(int(c)) + ")"
}

// originalHeaders are the names under which a convention carries the
// original method, URI and host.
type originalHeaders struct{ method, uri, host string }

// headersOf returns the header names of a proxy convention; ok is false for
// Envoy's and for unknown conventions.
func headersOf(c HeaderConvention) (originalHeaders, bool) {
	switch c {
	case NginxAuthRequest:
		return originalHeaders{"X-Original-Method", "X-Original-Uri", "X-Original-Host"}, true
	case ForwardAuth:
		return originalHeaders{"X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Host"}, true
	}
	return originalHeaders{}, false
}

// reasonNoOriginal marks the answer to a proxy subrequest that does not
// name its original request unambiguously: a missing, repeated or malformed
// method, URI or host header means a proxy configured wrongly.
const reasonNoOriginal authz.Reason = "original_request_unknown"

// httpHandler answers HTTP authorization subrequests (see NewHTTPHandler and
// NewProxyCheckHandler).
type httpHandler struct {
	checker    Checker
	logger     *slog.Logger
	convention HeaderConvention
	prefix     string          // conventionEnvoy only
	names      originalHeaders // proxy conventions only
	opts       Options
	ids        *idSource
}

// NewHTTPHandler returns a handler that answers the HTTP authorization
// subrequests of Envoy's http_service mode by asking checker. (nginx, Caddy
// and Traefik use NewProxyCheckHandler.)
//
// The original request is the subrequest itself:
//
//	method  the subrequest's method
//	path    the subrequest's path and query, still escaped, with prefix cut
//	        off (Envoy's path_prefix)
//	host    the Host header
//	scheme  X-Forwarded-Proto, else https on a TLS connection, else http
//	id      X-Request-Id, else a generated one
//	body    the subrequest's body, partial when x-envoy-auth-partial-body
//	        says so or when it is longer than 64 KiB
//
// X-Original-* and X-Forwarded-Method, -Uri and -Host are never read, so a
// client header that Envoy's allowed_headers lets through cannot change the
// request the token is judged against. Authorization values are passed on
// separately, as Envoy sent them.
//
// The request path must start with prefix (a path segment boundary follows
// it), else the handler answers 404. Mount the handler at prefix and at
// prefix+"/" without http.StripPrefix (MountHTTPChecks does); an empty
// prefix hands the whole path on.
//
// An allowed request gets 200 with the x-mcp-client-id, x-mcp-subject and
// x-mcp-scope headers and "x-envoy-auth-headers-to-remove: authorization". A
// denied one gets the Decision's status (401, 403), its WWW-Authenticate and
// its JSON body. A 5xx is answered only when no Decision could be had (an
// expired request context, a failed Checker), never for a bad token: proxies
// read 5xx as an outage.
func NewHTTPHandler(checker Checker, logger *slog.Logger, prefix string,
	opts ...Options) http.Handler {
	h := newHTTPHandler(checker, logger, conventionEnvoy, opts)
	h.prefix = strings.TrimSuffix(prefix, "/")
	return h
}

// NewProxyCheckHandler returns a handler that answers the authorization
// subrequests of a proxy that names the original request in headers, by
// asking checker. convention says which headers: NginxAuthRequest for nginx
// auth_request, ForwardAuth for Caddy forward_auth and Traefik forwardAuth.
// It panics on any other convention.
//
// The handler reads only its convention's headers for the original method,
// URI and host; the other convention's names are ignored, so a client header
// that one proxy passes through cannot decide the request. The scheme is
// X-Forwarded-Proto, else https on a TLS connection, else http; the
// decision id is X-Request-Id, else a generated one. The subrequest's own
// method and path are not read: mount the handler at one exact path
// (MountHTTPChecks uses NginxCheckPath and ForwardAuthCheckPath).
//
// The method and URI headers must be present, the URI starting with "/",
// and the method, URI, host and X-Forwarded-Proto headers sent at most once
// each (the proxy replaces the client's copies, it does not add); otherwise
// the proxy is configured wrongly and the handler answers 500 with the
// reason original_request_unknown, without asking checker (nginx turns it
// into 500, Caddy and Traefik pass it to the client: the request is never
// let through). Answers are otherwise those of NewHTTPHandler.
func NewProxyCheckHandler(checker Checker, logger *slog.Logger, convention HeaderConvention,
	opts ...Options) http.Handler {
	names, ok := headersOf(convention)
	if !ok {
		panic("envoy: NewProxyCheckHandler: unknown " + convention.String())
	}
	h := newHTTPHandler(checker, logger, convention, opts)
	h.names = names
	return h
}

func newHTTPHandler(checker Checker, logger *slog.Logger, convention HeaderConvention,
	opts []Options) *httpHandler {
	if logger == nil {
		logger = slog.Default()
	}
	return &httpHandler{
		checker: checker,
		logger: logger.With("component", "envoy.http",
			"convention", convention.String()),
		convention: convention,
		opts:       merge(opts),
		ids:        newIDSource(),
	}
}

// MountHTTPChecks serves the HTTP checks on mux, one handler per proxy
// family, all asking checker:
//
//	EnvoyCheckPrefix and below   Envoy http_service (NewHTTPHandler)
//	NginxCheckPath               nginx auth_request (NginxAuthRequest)
//	ForwardAuthCheckPath         Caddy forward_auth, Traefik forwardAuth
//	                             (ForwardAuth)
//
// The proxy paths are exact: a path below them is not a check.
func MountHTTPChecks(mux *http.ServeMux, checker Checker, logger *slog.Logger,
	opts ...Options) {
	envoyCheck := NewHTTPHandler(checker, logger, EnvoyCheckPrefix, opts...)
	// The prefix itself (Envoy asking about "/") and every path below it,
	// with no redirect in between.
	mux.Handle(EnvoyCheckPrefix, envoyCheck)
	mux.Handle(EnvoyCheckPrefix+"/", envoyCheck)
	mux.Handle(NginxCheckPath, NewProxyCheckHandler(checker, logger, NginxAuthRequest, opts...))
	mux.Handle(ForwardAuthCheckPath, NewProxyCheckHandler(checker, logger, ForwardAuth, opts...))
}

// ServeHTTP answers one authorization subrequest.
func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var (
		req *authz.Request
		bad string
	)
	if h.convention == conventionEnvoy {
		var ok bool
		if req, ok = h.envoyRequest(r); !ok {
			http.NotFound(w, r)
			return
		}
	} else {
		req, bad = h.proxyRequest(r)
	}

	var d *authz.Decision
	if bad != "" {
		h.logger.Warn("subrequest does not name its original request; "+
			"check the proxy's configuration", "decision_id", req.DecisionID, "header", bad)
		d = &authz.Decision{Reason: reasonNoOriginal, Status: http.StatusInternalServerError,
			Body: errorBody("server_error", reasonNoOriginal)}
	} else {
		d = decide(r.Context(), h.checker, req, h.logger)
	}
	if d.Allow {
		h.writeAllow(w, req.DecisionID, d)
	} else {
		writeDeny(w, d)
	}
	observe(r.Context(), h.logger, &h.opts, req.DecisionID, d, start)
}

// envoyRequest translates an Envoy http_service subrequest. It reports false
// when the path does not start with the prefix.
func (h *httpHandler) envoyRequest(r *http.Request) (*authz.Request, bool) {
	path, ok := cutPrefix(requestURI(r), h.prefix)
	if !ok {
		return nil, false
	}
	partial := strings.EqualFold(r.Header.Get(headerPartialBody), "true")
	return h.newRequest(r, r.Method, path, r.Host, partial), true
}

// proxyRequest translates a subrequest of h's proxy convention. When the
// original request cannot be read from it, bad names the offending header
// and the returned request carries only what logging needs.
func (h *httpHandler) proxyRequest(r *http.Request) (req *authz.Request, bad string) {
	method, okMethod := single(r.Header, h.names.method)
	uri, okURI := single(r.Header, h.names.uri)
	host, okHost := single(r.Header, h.names.host)
	_, okProto := single(r.Header, "X-Forwarded-Proto")
	switch {
	case !okMethod || method == "":
		bad = h.names.method
	case !okURI || !strings.HasPrefix(uri, "/"):
		bad = h.names.uri
	case !okHost:
		bad = h.names.host
	case !okProto:
		bad = "X-Forwarded-Proto"
	}
	if bad != "" {
		return &authz.Request{DecisionID: h.decisionID(r)}, bad
	}

	if h.convention == ForwardAuth {
		host = firstForwarded(host)
	}
	if host == "" {
		host = r.Host
	}
	return h.newRequest(r, method, uri, host, false), ""
}

// single returns the one value of header name; ok is false when the header
// is sent more than once (an absent header is "", true). A proxy sets these
// headers, replacing the client's copies: two lines mean one was added
// beside the client's, and either could be the one a reader picks.
func single(hdr http.Header, name string) (string, bool) {
	switch vs := hdr.Values(name); len(vs) {
	case 0:
		return "", true
	case 1:
		return strings.TrimSpace(vs[0]), true
	}
	return "", false
}

// decisionID is the subrequest's X-Request-Id, else a generated id.
func (h *httpHandler) decisionID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" {
		return id
	}
	return h.ids.next()
}

// newRequest builds the authz.Request for an original request and reads the
// subrequest's body.
func (h *httpHandler) newRequest(r *http.Request, method, path, host string,
	partial bool) *authz.Request {
	scheme := firstForwarded(r.Header.Get("X-Forwarded-Proto"))
	if scheme == "" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	req := &authz.Request{
		DecisionID:    h.decisionID(r),
		Method:        method,
		Scheme:        scheme,
		Host:          host,
		Path:          path,
		Authorization: r.Header.Values("Authorization"),
		Header:        httpHeader(r, host),
	}
	req.Body, req.BodyPartial = readBody(r, partial)
	return req
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
