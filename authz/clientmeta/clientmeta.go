// Package clientmeta holds the rules that client metadata follows wherever
// it comes from: a dynamic registration (RFC 7591) or a client ID metadata
// document. The authorization server refuses a registration that breaks
// them; a metadata document's offending member is left out instead.
package clientmeta

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"unicode"
	"unicode/utf8"
)

// Metadata is the client metadata (RFC 7591 §2) this server reads from a
// registration request or a client ID metadata document; every other member
// is ignored.
type Metadata struct {
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name"`
	ClientURI               string   `json:"client_uri"`
	LogoURI                 string   `json:"logo_uri"`
	Scope                   string   `json:"scope"`
	Contacts                []string `json:"contacts"`
	SoftwareID              string   `json:"software_id"`
	SoftwareVersion         string   `json:"software_version"`
	ApplicationType         string   `json:"application_type"`
}

// Grant types this server offers to clients.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
)

// GrantTypes returns the grant types a client is given for those it asked
// for: authorization_code alone when it asked for none, else those it asked
// for that this server offers (RFC 7591 §3.2.1 lets the server replace
// values), which must include authorization_code.
func GrantTypes(asked []string) ([]string, error) {
	if len(asked) == 0 {
		return []string{GrantAuthorizationCode}, nil
	}
	var out []string
	for _, g := range []string{GrantAuthorizationCode, GrantRefreshToken} {
		if slices.Contains(asked, g) {
			out = append(out, g)
		}
	}
	if !slices.Contains(out, GrantAuthorizationCode) {
		return nil, errors.New("grant_types must include authorization_code")
	}
	return out, nil
}

// CheckText accepts printable UTF-8 of at most max bytes. Format characters
// (bidirectional overrides, zero-width joiners) are refused too: they could
// make a client's name read as another's on the consent page.
func CheckText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return errors.New("contains control or format characters")
		}
	}
	return nil
}

// IsWebURL reports whether s is an absolute http or https URL of at most
// maxLen bytes without user information.
func IsWebURL(s string, maxLen int) bool {
	if len(s) > maxLen {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") &&
		u.Host != "" && u.User == nil
}

// Dedupe returns in without repeated values, in first-seen order.
func Dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Truncate shortens s to at most n bytes, cut at a rune boundary so that it
// stays valid UTF-8, and marks the cut with an ellipsis; it is for quoting
// client input in errors.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
