package cimd

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// MaxURLLen bounds a client id URL.
const MaxURLLen = 2000

// schemePrefix starts every client id URL. The comparison with the
// document's client_id is exact, so the scheme must be written in lower case.
const schemePrefix = "https://"

// IsClientIDURL reports whether id claims to be a client id metadata
// document URL, that is, starts with "https://". It does not validate the
// URL (ValidateClientIDURL does); ids that do not start so are never
// resolved as documents.
func IsClientIDURL(id string) bool { return strings.HasPrefix(id, schemePrefix) }

// ValidateClientIDURL checks id against the rules for a client identifier
// URL: https, a host, a path other than "/", no user info, no fragment, no
// "." or ".." path segment (also when percent-encoded), no port 0, printable
// ASCII only and at most MaxURLLen bytes. The error is safe to show the
// client.
func ValidateClientIDURL(id string) error {
	switch {
	case !IsClientIDURL(id):
		return errors.New("not an https URL")
	case len(id) > MaxURLLen:
		return fmt.Errorf("longer than %d bytes", MaxURLLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= 0x20 || c >= 0x7f || c == '\\' {
			return errors.New("contains a space, backslash, control or non-ASCII character")
		}
	}
	if strings.Contains(id, "#") {
		return errors.New("must not have a fragment")
	}
	u, err := url.Parse(id)
	switch {
	case err != nil:
		return errors.New("does not parse as a URL")
	case u.User != nil:
		return errors.New("must not have user info")
	case u.Opaque != "" || u.Host == "" || strings.Trim(u.Hostname(), ".") == "":
		return errors.New("needs a host")
	case u.Port() == "0" || strings.HasSuffix(u.Host, ":"):
		return errors.New("has an invalid port")
	case u.EscapedPath() == "" || u.EscapedPath() == "/":
		return errors.New("needs a path (the document cannot be the site's root)")
	}
	for seg := range strings.SplitSeq(u.EscapedPath(), "/") {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return errors.New("has a malformed percent-encoding in its path")
		}
		if dec == "." || dec == ".." {
			return errors.New(`must not have "." or ".." path segments`)
		}
	}
	return nil
}

// hostOf returns the host name of a client id URL (without port, brackets
// or a trailing dot) by slicing, without allocating. ok is false when id
// does not start with https:// or carries user info.
func hostOf(id string) (host string, ok bool) {
	rest, found := strings.CutPrefix(id, schemePrefix)
	if !found {
		return "", false
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if strings.IndexByte(rest, '@') >= 0 {
		return "", false
	}
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", false
		}
		return rest[1:end], true
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		rest = rest[:i]
	}
	rest = strings.TrimSuffix(rest, ".")
	return rest, rest != ""
}

// domainPattern is an allow or deny list entry: an exact host, or with
// wildcard set every subdomain of suffix (".example.com").
type domainPattern struct {
	name     string // exact host, or the suffix with its leading dot
	wildcard bool
}

// parseDomainPattern validates an entry: a host name or IP address, or
// "*." followed by a host name.
func parseDomainPattern(p string) (domainPattern, error) {
	raw := p
	p = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(p)), ".")
	wildcard := strings.HasPrefix(p, "*.")
	name := strings.TrimPrefix(p, "*.")
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if name == "" || strings.ContainsAny(name, "*/@ ?#") {
		return domainPattern{}, fmt.Errorf("domain pattern %q: want a host name or *.domain", raw)
	}
	if wildcard {
		return domainPattern{name: "." + name, wildcard: true}, nil
	}
	return domainPattern{name: name}, nil
}

// matches reports whether host (as returned by hostOf) matches the pattern,
// ignoring case.
func (p domainPattern) matches(host string) bool {
	if !p.wildcard {
		return strings.EqualFold(host, p.name)
	}
	return len(host) > len(p.name) && strings.EqualFold(host[len(host)-len(p.name):], p.name)
}
