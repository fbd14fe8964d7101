package oauth

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
)

// Registration modes of RegistrationPolicy.
const (
	// RegistrationOpen lets anyone register a client (the default).
	RegistrationOpen = "open"
	// RegistrationToken requires an initial access token (RFC 7591 §3).
	RegistrationToken = "token"
	// RegistrationClosed refuses dynamic registration: only pre-registered
	// clients and clients identified by a metadata document can connect.
	RegistrationClosed = "closed"
)

// Defaults of RegistrationPolicy's limits.
const (
	DefaultMaxRegistrationBytes = 64 << 10
	DefaultMaxRedirectURIs      = 10
	DefaultMaxURILength         = maxRedirectURILen
	DefaultMaxTextLength        = 256
	minInitialAccessTokenLen    = 16
)

// RegistrationPolicy says who may register clients dynamically and what a
// registration may hold. The zero value is open registration with the
// default limits.
type RegistrationPolicy struct {
	// Mode is RegistrationOpen (also ""), RegistrationToken or
	// RegistrationClosed.
	Mode string
	// InitialAccessTokens are accepted, in RegistrationToken mode, as
	// "Authorization: Bearer <token>" on registration requests. Each must be
	// at least 16 characters. A presented token's SHA-256 is compared with
	// every one's in constant time.
	InitialAccessTokens []string
	// AllowRedirectHosts, when not empty, lists the only redirect targets a
	// registration may name; DenyRedirectHosts lists targets it must not
	// name, and wins over the allow list. An entry is a host name or IP
	// address ("claude.ai", "127.0.0.1", "[::1]"), "*.suffix" for every
	// host below a domain (not the domain itself), "loopback" for
	// localhost and every loopback address, or a scheme ending in a colon
	// ("cursor:") for every URI of that scheme. Hosts are matched on http
	// and https URIs only; private-use URIs (cursor://…) are matched by
	// their scheme.
	AllowRedirectHosts []string
	DenyRedirectHosts  []string
	// MaxBodyBytes bounds a registration request (default 64 KiB).
	MaxBodyBytes int64
	// MaxRedirectURIs bounds redirect_uris (default 10).
	MaxRedirectURIs int
	// MaxURILength bounds each redirect URI, client_uri and logo_uri
	// (default and maximum 2000 bytes).
	MaxURILength int
	// MaxTextLength bounds client_name, software_id and software_version
	// (default 256 bytes).
	MaxTextLength int
}

func (p RegistrationPolicy) withDefaults() RegistrationPolicy {
	p.Mode = cmp.Or(p.Mode, RegistrationOpen)
	p.MaxBodyBytes = cmp.Or(p.MaxBodyBytes, DefaultMaxRegistrationBytes)
	p.MaxRedirectURIs = cmp.Or(p.MaxRedirectURIs, DefaultMaxRedirectURIs)
	p.MaxURILength = cmp.Or(p.MaxURILength, DefaultMaxURILength)
	p.MaxTextLength = cmp.Or(p.MaxTextLength, DefaultMaxTextLength)
	return p
}

func (p RegistrationPolicy) validate() error {
	var errs []error
	switch p.Mode {
	case RegistrationOpen, RegistrationClosed:
	case RegistrationToken:
		if len(p.InitialAccessTokens) == 0 {
			errs = append(errs, errors.New("registration mode token needs initial access tokens"))
		}
	default:
		errs = append(errs, fmt.Errorf("registration mode %q: want open, token or closed",
			p.Mode))
	}
	for i, t := range p.InitialAccessTokens {
		if len(t) < minInitialAccessTokenLen || strings.ContainsFunc(t, func(r rune) bool {
			return r <= ' ' || r >= 0x7f
		}) {
			errs = append(errs, fmt.Errorf("initial access token %d: want at least %d "+
				"printable ASCII characters without spaces", i+1, minInitialAccessTokenLen))
		}
	}
	// Sorted, so that the errors come in the same order every time.
	checks := map[string][]string{
		"allow": p.AllowRedirectHosts, "deny": p.DenyRedirectHosts,
	}
	for _, list := range slices.Sorted(maps.Keys(checks)) {
		entries := checks[list]
		for _, e := range entries {
			if _, err := parseHostPattern(e); err != nil {
				errs = append(errs, fmt.Errorf("redirect %s list: %w", list, err))
			}
		}
	}
	if p.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("registration body limit %d: want at least 1024",
			p.MaxBodyBytes))
	}
	if p.MaxRedirectURIs < 1 {
		errs = append(errs, fmt.Errorf("redirect URI limit %d: want at least 1",
			p.MaxRedirectURIs))
	}
	if p.MaxURILength < 64 || p.MaxURILength > maxRedirectURILen {
		errs = append(errs, fmt.Errorf("URI length limit %d: want 64 to %d", p.MaxURILength,
			maxRedirectURILen))
	}
	if p.MaxTextLength < 16 {
		errs = append(errs, fmt.Errorf("text length limit %d: want at least 16",
			p.MaxTextLength))
	}
	return errors.Join(errs...)
}

// registrationPolicy is a validated RegistrationPolicy ready to apply.
type registrationPolicy struct {
	RegistrationPolicy
	tokenHashes [][sha256.Size]byte
	allow, deny []hostPattern
}

// newRegistrationPolicy compiles p, which has passed validate.
func newRegistrationPolicy(p RegistrationPolicy) *registrationPolicy {
	rp := &registrationPolicy{RegistrationPolicy: p}
	for _, t := range p.InitialAccessTokens {
		rp.tokenHashes = append(rp.tokenHashes, sha256.Sum256([]byte(t)))
	}
	rp.InitialAccessTokens = nil // only the hashes are kept
	for _, e := range p.AllowRedirectHosts {
		hp, _ := parseHostPattern(e)
		rp.allow = append(rp.allow, hp)
	}
	for _, e := range p.DenyRedirectHosts {
		hp, _ := parseHostPattern(e)
		rp.deny = append(rp.deny, hp)
	}
	return rp
}

// limits returns the metadata limits of the policy.
func (p *registrationPolicy) limits() metadataLimits {
	return metadataLimits{redirectURIs: p.MaxRedirectURIs, uriLen: p.MaxURILength,
		textLen: p.MaxTextLength}
}

// validInitialToken reports whether token is one of the initial access
// tokens, comparing its SHA-256 with every one in constant time.
func (p *registrationPolicy) validInitialToken(token string) bool {
	sum := sha256.Sum256([]byte(token))
	found := 0
	for _, h := range p.tokenHashes {
		found |= subtle.ConstantTimeCompare(sum[:], h[:])
	}
	return found == 1
}

// registrationAllowed applies the registration mode to a registration
// request. When registration is refused it answers and returns false:
// closed mode gets 403 access_denied (RFC 7591 has no code for it; the
// description tells a person what to do), and in token mode a missing
// initial access token gets 401 with a bare Bearer challenge, a wrong one
// 401 invalid_token (RFC 6750 §3.1).
func (s *Server) registrationAllowed(w http.ResponseWriter, r *http.Request) bool {
	switch s.policy.Mode {
	case RegistrationClosed:
		writeError(w, http.StatusForbidden, errAccessDenied,
			"dynamic client registration is disabled on this server; use a pre-registered "+
				"client or a client ID metadata document")
		return false
	case RegistrationToken:
		token, present := bearerCredential(r)
		if present && s.policy.validInitialToken(token) {
			return true
		}
		if !present {
			w.Header().Set("WWW-Authenticate", `Bearer realm="registration"`)
			writeError(w, http.StatusUnauthorized, errInvalidToken,
				"registration needs an initial access token from the administrator")
			return false
		}
		s.log.Info("registration refused: wrong initial access token",
			"token_fp", fingerprint(token))
		w.Header().Set("WWW-Authenticate",
			`Bearer realm="registration", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, errInvalidToken,
			"the initial access token is not valid")
		return false
	}
	return true
}

// registrationEndpoint is the metadata's registration_endpoint: none when
// registration is closed, so that clients do not try it (RFC 8414 §2).
func (s *Server) registrationEndpoint() string {
	if s.policy.Mode == RegistrationClosed {
		return ""
	}
	return s.base + pathRegister
}

// bearerCredential returns the token of a single "Authorization: Bearer" header;
// present is false when there is none (or it is not a Bearer header).
func bearerCredential(r *http.Request) (token string, present bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return "", len(vals) > 1
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// hostPattern is one entry of a redirect allow or deny list.
type hostPattern struct {
	scheme   string // "cursor" for "cursor:"; empty for host patterns
	host     string // exact host, or the suffix (".example.com") when suffix
	suffix   bool
	loopback bool
}

// parseHostPattern reads an allow or deny list entry.
func parseHostPattern(e string) (hostPattern, error) {
	s := strings.ToLower(strings.TrimSpace(e))
	switch {
	case s == "loopback":
		return hostPattern{loopback: true}, nil
	case strings.HasSuffix(s, ":") && !strings.HasPrefix(s, "["):
		scheme := strings.TrimSuffix(s, ":")
		if !validScheme(scheme) {
			return hostPattern{}, fmt.Errorf("entry %q: not a URI scheme", e)
		}
		return hostPattern{scheme: scheme}, nil
	case strings.HasPrefix(s, "*."):
		if !validHostName(s[2:]) {
			return hostPattern{}, fmt.Errorf("entry %q: not a domain after *.", e)
		}
		return hostPattern{host: s[1:], suffix: true}, nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return hostPattern{host: a.Unmap().String()}, nil
	}
	if !validHostName(s) {
		return hostPattern{}, fmt.Errorf("entry %q: want a host, *.domain, loopback or "+
			"scheme:", e)
	}
	return hostPattern{host: s}, nil
}

// matches reports whether the redirect URI u matches the pattern.
func (p hostPattern) matches(u *url.URL) bool {
	scheme := strings.ToLower(u.Scheme)
	if p.scheme != "" {
		return scheme == p.scheme
	}
	if scheme != "http" && scheme != "https" {
		return false
	}
	// A trailing dot names the same host ("evil.example." is
	// "evil.example"): drop it so that it cannot slip past the deny list.
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	switch {
	case p.loopback:
		return IsLoopbackHost(host)
	case p.suffix:
		return strings.HasSuffix(host, p.host)
	}
	return host == p.host
}

// checkRedirectPolicy applies the allow and deny lists to redirect URIs that
// have passed validateRedirectURI. The error names the first URI refused:
// clients such as Cursor register several at once and drop the whole
// registration when one is refused, so the operator must see which one.
// Refusing rather than dropping the URI keeps the failure at registration,
// where it is visible, instead of at the authorization page.
func (s *Server) checkRedirectPolicy(uris []string) *oauthError {
	p := s.policy
	if len(p.allow) == 0 && len(p.deny) == 0 {
		return nil
	}
	for _, raw := range uris {
		u, err := url.Parse(raw)
		if err != nil {
			return newError(http.StatusBadRequest, errInvalidRedirectURI,
				fmt.Sprintf("redirect URI %q does not parse", clientmeta.Truncate(raw, 200)))
		}
		denied := matchesAny(p.deny, u)
		if !denied && len(p.allow) > 0 {
			denied = !matchesAny(p.allow, u)
		}
		if denied {
			return newError(http.StatusBadRequest, errInvalidRedirectURI,
				fmt.Sprintf("redirect URI %q is not allowed by this server's registration "+
					"policy", clientmeta.Truncate(raw, 200)))
		}
	}
	return nil
}

func matchesAny(ps []hostPattern, u *url.URL) bool {
	for _, p := range ps {
		if p.matches(u) {
			return true
		}
	}
	return false
}

// validScheme checks RFC 3986 scheme syntax.
func validScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validHostName checks a lower-case DNS name: labels of letters, digits and
// hyphens (underscores tolerated), separated by dots.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
