package authz

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults applied by Config.WithDefaults.
const (
	DefaultAccessTokenTTL = time.Hour
	DefaultLeeway         = 30 * time.Second
)

// wellKnownResourceMetadata is the RFC 9728 well-known path segment.
const wellKnownResourceMetadata = "/.well-known/oauth-protected-resource"

// Resource is a protected resource: one MCP server URL behind the proxy.
type Resource struct {
	// URL is the canonical resource URL, e.g. http://localhost:8080/mcp.
	URL string
	// Scopes are the scopes published in the resource's metadata.
	Scopes []string
	// RequiredScopes are needed by every request to the resource.
	RequiredScopes []string
	// Rules require more scopes for some MCP messages (see ScopeRule and
	// the package documentation).
	Rules []ScopeRule
}

// Config is the authorization server's and decision's shared configuration.
type Config struct {
	// Issuer is the exact issuer identifier, e.g. http://localhost:9000.
	Issuer string
	// Resources are the protected resources; at least one.
	Resources []Resource
	// AccessTokenTTL is the lifetime of access tokens (default 1h).
	AccessTokenTTL time.Duration
	// Leeway is the clock skew tolerated on exp and nbf (default 30s).
	Leeway time.Duration
}

// WithDefaults returns a copy of c with zero durations set to their defaults
// and every resource normalised: the scheme and host lower-cased, a default
// port dropped, the trailing slash of an origin-only URL removed (MCP's
// canonical form) and RequiredScopes and the scopes of Rules added to Scopes
// when missing, so that the published scopes_supported names them. URLs that
// do not parse are left as they are; Validate reports them.
func (c Config) WithDefaults() Config {
	if c.AccessTokenTTL == 0 {
		c.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	rs := make([]Resource, len(c.Resources))
	for i, r := range c.Resources {
		if u, err := canonicalResourceURL(r.URL); err == nil {
			r.URL = u
		}
		r.Scopes = slices.Clone(r.Scopes)
		r.Rules = slices.Clone(r.Rules)
		extra := slices.Clone(r.RequiredScopes)
		for i := range r.Rules {
			r.Rules[i].Scopes = slices.Clone(r.Rules[i].Scopes)
			extra = append(extra, r.Rules[i].Scopes...)
		}
		for _, s := range extra {
			if !slices.Contains(r.Scopes, s) {
				r.Scopes = append(r.Scopes, s)
			}
		}
		r.RequiredScopes = slices.Clone(r.RequiredScopes)
		rs[i] = r
	}
	c.Resources = rs
	return c
}

// Validate reports every problem of c, joined: the issuer must be an
// absolute http(s) URL without query or fragment; there must be at least one
// resource, each an absolute http(s) URL without query or fragment, none
// configured twice; scopes must be RFC 6749 scope tokens; each rule needs a
// method (printable ASCII without spaces or commas, or "*"), a tool without
// control characters and at least one scope; durations must not be
// negative. Call it on the result of WithDefaults.
//
// A resource URL with a query is refused although RFC 8707 tolerates one:
// requests are matched to resources by host and path, so a query could never
// tell two resources apart.
func (c Config) Validate() error {
	var errs []error
	if err := validateIssuer(c.Issuer); err != nil {
		errs = append(errs, err)
	}
	if len(c.Resources) == 0 {
		errs = append(errs, errors.New("no protected resource configured"))
	}
	seen := map[string]bool{}
	for _, r := range c.Resources {
		u, err := canonicalResourceURL(r.URL)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[u] {
			errs = append(errs, fmt.Errorf("resource %q configured twice", r.URL))
		}
		seen[u] = true
		for _, s := range slices.Concat(r.Scopes, r.RequiredScopes) {
			if !validScopeToken(s) {
				errs = append(errs, fmt.Errorf("resource %q: invalid scope %q", r.URL, s))
			}
		}
		for _, rule := range r.Rules {
			if err := rule.validate(r.URL); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if c.AccessTokenTTL < 0 {
		errs = append(errs, fmt.Errorf("negative access token ttl %v", c.AccessTokenTTL))
	}
	if c.Leeway < 0 {
		errs = append(errs, fmt.Errorf("negative leeway %v", c.Leeway))
	}
	return errors.Join(errs...)
}

// Resource returns the configured resource whose URL is u. The match is exact
// after the normalisation of WithDefaults, so a trailing slash on an
// origin-only URL and the case of the scheme and host do not matter; a path
// must match exactly.
func (c Config) Resource(u string) (*Resource, bool) {
	want, err := canonicalResourceURL(u)
	if err != nil {
		return nil, false
	}
	for i := range c.Resources {
		got, err := canonicalResourceURL(c.Resources[i].URL)
		if err == nil && got == want {
			return &c.Resources[i], true
		}
	}
	return nil, false
}

// ResourceMetadataURL returns the RFC 9728 protected resource metadata URL of
// a resource: for https://h/p it is https://h/.well-known/oauth-protected-resource/p,
// and for an origin-only resource https://h/.well-known/oauth-protected-resource.
// It returns "" when resourceURL is not an absolute URL.
func ResourceMetadataURL(resourceURL string) string {
	u, err := url.Parse(resourceURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	p := u.EscapedPath()
	if p == "/" {
		p = ""
	}
	return u.Scheme + "://" + u.Host + wellKnownResourceMetadata + p
}

func validateIssuer(iss string) error {
	u, err := url.Parse(iss)
	switch {
	case err != nil:
		return fmt.Errorf("issuer %q: %w", iss, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("issuer %q: not an absolute http(s) URL", iss)
	case u.Host == "" || u.User != nil:
		return fmt.Errorf("issuer %q: needs a host and no user info", iss)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(iss, "#"):
		return fmt.Errorf("issuer %q: must have no query or fragment", iss)
	}
	return nil
}

// canonicalResourceURL validates a resource URL and returns its canonical
// form: lower-case scheme and host, no default port, no trailing slash when
// the path is only "/".
func canonicalResourceURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == '"' || r == '\\' }):
		return "", fmt.Errorf("resource %q: space, quote or backslash in URL", raw)
	case err != nil:
		return "", fmt.Errorf("resource %q: %w", raw, err)
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "HTTP" && u.Scheme != "HTTPS":
		return "", fmt.Errorf("resource %q: not an absolute http(s) URL", raw)
	case u.Host == "" || u.User != nil || u.Opaque != "":
		return "", fmt.Errorf("resource %q: needs a host and no user info", raw)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return "", fmt.Errorf("resource %q: must have no query or fragment", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == defaultPort(scheme) {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host = net.JoinHostPort(strings.Trim(host, "[]"), port)
	}
	p := u.EscapedPath()
	if p == "/" {
		p = ""
	}
	return scheme + "://" + host + p, nil
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// validScopeToken reports whether s is a scope-token of RFC 6749 §3.3:
// printable ASCII without space, double quote or backslash.
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
