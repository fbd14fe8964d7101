package oauth

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
)

// Form origin check. The login and consent forms of /authorize and the
// forms of the consent list are served by the issuer and posted back to it.
// Their CSRF tokens (browser.go) are the first defence against a post forged
// by another site; checkFormOrigin is the second. Browsers say where a post
// comes from in Origin and Sec-Fetch-Site, which no page can set, and a post
// from anywhere but the issuer's own pages is refused before its fields are
// looked at:
//
//   - Sec-Fetch-Site must be same-origin or none (a post the user started
//     from the browser itself). same-site is refused too: a page on another
//     port or subdomain of the issuer's host is not the issuer, yet the
//     SameSite=Lax session cookie goes along with its posts.
//   - Origin must be the issuer's origin exactly: scheme, host and port,
//     the scheme's default port left out, case ignored in scheme and host.
//     "null" is refused, since a sandboxed frame or a data: URL sends it.
//     This is why the pages' referrer policy is same-origin and not
//     no-referrer: under no-referrer a browser sends Origin: null on the
//     pages' own form posts (Fetch, "append a request Origin header").
//   - A post with neither header, from an old browser or from a program,
//     passes on its CSRF token alone.
//
// The authorization request itself may be posted to /authorize from the
// client's site (a post without a step field): it is not checked, as it
// carries nothing the user decided.

// errCrossOriginForm answers a form posted from another origin.
var errCrossOriginForm = newError(http.StatusForbidden, errAccessDenied,
	"this form was not sent from this server's own page; "+
		"go back to the application and connect again")

// checkFormOrigin refuses a form post whose Origin or Sec-Fetch-Site
// header shows another origin; it answers the request and returns false
// then.
func (s *Server) checkFormOrigin(w http.ResponseWriter, r *http.Request) bool {
	site, siteOK := singleHeader(r.Header, "Sec-Fetch-Site")
	origin, originOK := singleHeader(r.Header, "Origin")
	switch {
	case !siteOK || (site != "" && site != "same-origin" && site != "none"):
	case !originOK || (origin != "" && !s.isIssuerOrigin(origin)):
	default:
		return true
	}
	args := []any{"origin", clientmeta.Truncate(origin, 100),
		"sec_fetch_site", clientmeta.Truncate(site, 20), "issuer_origin", s.origin,
		"path", clientmeta.Truncate(r.URL.Path, 100)}
	if origin == "null" && site == "same-origin" {
		args = append(args, "hint", "a Referrer-Policy of no-referrer set by a proxy "+
			"makes browsers send Origin: null on the pages' own forms")
	}
	s.log.Warn("form post refused: sent from another origin", args...)
	s.renderError(w, r, errCrossOriginForm)
	return false
}

// isIssuerOrigin reports whether an Origin header value is the issuer's
// origin.
func (s *Server) isIssuerOrigin(origin string) bool {
	o, ok := webOrigin(origin)
	return ok && s.origin != "" && o == s.origin
}

// singleHeader returns the value of a header sent at most once; ok is false
// when it was sent several times.
func singleHeader(h http.Header, name string) (string, bool) {
	vs := h.Values(name)
	switch len(vs) {
	case 0:
		return "", true
	case 1:
		return strings.TrimSpace(vs[0]), true
	}
	return "", false
}

// defaultPorts are the ports an origin leaves out.
var defaultPorts = map[string]int{"http": 80, "https": 443}

// webOrigin returns the origin of an absolute URL (RFC 6454 §6.2): the
// scheme and host in lower case and the port only when it is not the
// scheme's default. An Origin header value has no path; a URL with more
// than a "/" path, a query, a fragment or user information is refused,
// and so is "null".
func webOrigin(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Hostname() == "" || u.Opaque != "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" ||
		u.ForceQuery || u.Fragment != "" {
		return "", false
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname())
	if p := u.Port(); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return "", false
		}
		if port != defaultPorts[scheme] {
			return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)), true
		}
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host, true
}
