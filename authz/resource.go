package authz

import (
	"cmp"
	"net"
	"net/url"
	"path"
	"slices"
	"strings"
)

// protected is a configured resource prepared for matching, with its deny
// answers built once.
type protected struct {
	res Resource // canonical URL
	// host is the lower-case host name without brackets, port its port
	// (the scheme's default when the URL has none).
	host, port string
	// defaultPort is true when port is the default of the URL's scheme, so
	// a request authority without a port matches.
	defaultPort bool
	// base is the URL's path without a trailing slash; "" for an origin.
	base string
	// every is what every request needs (RequiredScopes), with its deny
	// answers; rules what MCP messages need, nil without rules.
	every *need
	rules *ruleTable
}

// resourceIndex finds the protected resource of a request.
type resourceIndex struct {
	all   []*protected          // longest base path first
	byURL map[string]*protected // configured and canonical URLs
}

func newResourceIndex(cfg Config) *resourceIndex {
	ix := &resourceIndex{byURL: map[string]*protected{}}
	for _, r := range cfg.Resources {
		canon, err := canonicalResourceURL(r.URL)
		if err != nil {
			continue // Validate reports it; such a resource never matches
		}
		u, err := url.Parse(canon)
		if err != nil {
			continue
		}
		r.URL = canon
		p := &protected{res: r, host: u.Hostname(), port: u.Port(),
			base: strings.TrimSuffix(u.EscapedPath(), "/")}
		if p.port == "" {
			p.port = defaultPort(u.Scheme)
		}
		p.defaultPort = p.port == defaultPort(u.Scheme)
		ns := newNeeds(r)
		p.every = ns.get()
		p.rules = newRuleTable(r, ns)
		ix.all = append(ix.all, p)
		for _, k := range []string{r.URL, canon, canon + "/"} {
			if _, dup := ix.byURL[k]; !dup {
				ix.byURL[k] = p
			}
		}
	}
	slices.SortStableFunc(ix.all, func(a, b *protected) int {
		return cmp.Compare(len(b.base), len(a.base))
	})
	return ix
}

// byName returns the resource a route names (Envoy's context extension),
// matched like Config.Resource.
func (ix *resourceIndex) byName(name string) *protected {
	if p := ix.byURL[name]; p != nil {
		return p
	}
	canon, err := canonicalResourceURL(name)
	if err != nil {
		return nil
	}
	return ix.byURL[canon]
}

// match returns the resource serving host and target (a request path with
// an optional query): the host name compared case-insensitively, a missing
// port standing for the resource scheme's default, and the path equal to the
// resource's path or under it, after dot segments and encoded separators
// are resolved. The longest matching path wins.
func (ix *resourceIndex) match(host, target string) *protected {
	name, port := splitHost(host)
	if name == "" {
		return nil
	}
	p, ok := cleanPath(target)
	if !ok {
		return nil
	}
	for _, r := range ix.all {
		if !strings.EqualFold(r.host, name) || (port != "" && port != r.port) ||
			(port == "" && !r.defaultPort) {
			continue
		}
		if r.base == "" || p == r.base ||
			(strings.HasPrefix(p, r.base) && p[len(r.base)] == '/') {
			return r
		}
	}
	return nil
}

// splitHost splits an authority into host name and port ("" when absent),
// removing the brackets of an IPv6 literal and a trailing dot.
func splitHost(authority string) (string, string) {
	h, p := authority, ""
	if i := strings.LastIndexByte(authority, ':'); i >= 0 &&
		!strings.Contains(authority[i:], "]") {
		if hh, pp, err := net.SplitHostPort(authority); err == nil {
			h, p = hh, pp
		}
	}
	h = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), ".")
	return h, p
}

// cleanPath strips the query and fragment from a request target and
// resolves it the way an upstream might: "%2e", "%2f", "%5c" and "\" decoded,
// dot segments and repeated slashes removed. It reports false for a target
// that is not an absolute path.
func cleanPath(target string) (string, bool) {
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	if target == "" || target[0] != '/' {
		return "", false
	}
	if strings.ContainsAny(target, `%\`) {
		target = decodeSeparators(target)
	}
	// path.Clean returns target itself, without allocating, when it is
	// already clean.
	return path.Clean(target), true
}

func decodeSeparators(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			b.WriteByte('/')
			continue
		}
		if c == '%' && i+2 < len(s) {
			switch strings.ToLower(s[i+1 : i+3]) {
			case "2e":
				b.WriteByte('.')
				i += 2
				continue
			case "2f", "5c":
				b.WriteByte('/')
				i += 2
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}
