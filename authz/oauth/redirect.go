package oauth

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// maxRedirectURILen bounds one redirect URI.
const maxRedirectURILen = 2000

// blockedSchemes can never receive an authorization response: they run code
// or read local files in the browser (javascript, data, file, vbscript),
// are browser-internal pages or extensions (about, blob, filesystem,
// chrome, view-source, resource, ...), hand the URI to another network
// protocol or application (ftp, ws, ssh, mailto, tel, intent, ...), or
// read archives (jar). A private-use scheme (RFC 8252 §7.1) names one
// application; these are not that, whatever their syntax.
var blockedSchemes = map[string]bool{
	// Code or local files.
	"javascript": true, "data": true, "file": true, "vbscript": true, "jar": true,
	// Browser-internal pages and extensions.
	"about": true, "blob": true, "filesystem": true, "view-source": true,
	"chrome": true, "chrome-extension": true, "resource": true,
	"moz-extension": true, "ms-browser-extension": true,
	// Network protocols and handlers of other applications.
	"ftp": true, "ftps": true, "ws": true, "wss": true, "ssh": true, "sftp": true,
	"smb": true, "ldap": true, "gopher": true, "mailto": true, "tel": true, "sms": true,
	"intent": true, "android-app": true,
}

// validateRedirectURI checks a redirect URI offered at registration: an
// absolute URI without fragment or user info; https anywhere, http only on a
// loopback host, and private-use schemes (RFC 8252 §7.1, e.g.
// cursor://anysphere.cursor-mcp/oauth/callback; a dot is not required, as
// vscode:// and claude:// have none) except the blockedSchemes. The error
// is safe to show the client.
func validateRedirectURI(raw string) error {
	if raw == "" {
		return errors.New("empty redirect URI")
	}
	if len(raw) > maxRedirectURILen {
		return errors.New("redirect URI too long")
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= 0x20 || c >= 0x7f {
			return errors.New("redirect URI contains a space, control or non-ASCII character")
		}
	}
	if strings.Contains(raw, "#") {
		return errors.New("redirect URI must not have a fragment")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("redirect URI does not parse")
	}
	if u.Scheme == "" {
		return errors.New("redirect URI must be absolute")
	}
	if u.User != nil {
		return errors.New("redirect URI must not have user info")
	}
	switch scheme := strings.ToLower(u.Scheme); {
	case scheme == "https":
		if u.Host == "" || u.Hostname() == "" {
			return errors.New("https redirect URI needs a host")
		}
	case scheme == "http":
		if !IsLoopbackHost(u.Hostname()) {
			return errors.New("http redirect URI allowed only for localhost, " +
				"127.0.0.1 or [::1]; use https")
		}
	case blockedSchemes[scheme]:
		return errors.New("redirect URI scheme " + scheme + " is not allowed")
	case u.Opaque != "":
		return errors.New("private-use redirect URI must have a path, as in app.example:/cb")
	}
	return nil
}

// IsLoopbackHost reports whether host (without port or brackets) is
// localhost or a loopback IP address: this machine only.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// matchRedirectURI returns whether requested may receive the authorization
// response of a client registered with registered. The match is exact, except
// that for an http loopback URI (localhost, 127.0.0.0/8, [::1]) the port is
// ignored (RFC 8252 §7.3) and an empty path equals "/".
func matchRedirectURI(registered []string, requested string) bool {
	for _, r := range registered {
		if r == requested {
			return true
		}
	}
	req, ok := loopbackURI(requested)
	if !ok {
		return false
	}
	for _, r := range registered {
		reg, ok := loopbackURI(r)
		if ok && strings.EqualFold(reg.Hostname(), req.Hostname()) &&
			pathOrSlash(reg.EscapedPath()) == pathOrSlash(req.EscapedPath()) &&
			reg.RawQuery == req.RawQuery && reg.ForceQuery == req.ForceQuery {
			return true
		}
	}
	return false
}

// loopbackURI parses raw when it is a valid http redirect URI on a loopback
// host.
func loopbackURI(raw string) (*url.URL, bool) {
	if validateRedirectURI(raw) != nil {
		return nil, false
	}
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "http") {
		return nil, false
	}
	return u, true
}

func pathOrSlash(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// redirectHost is the part of a redirect URI named on the consent page: the
// host for web URIs, the scheme and host for private-use schemes.
func redirectHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return u.Host
	}
	if u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + ":"
}
