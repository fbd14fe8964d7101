package oauth

import (
	"errors"
	"slices"
	"strings"
)

// scopeOfflineAccess is accepted in requests and dropped: refresh tokens are
// issued to every client registered with the refresh_token grant.
const scopeOfflineAccess = "offline_access"

// parseScope splits a scope parameter (RFC 6749 §3.3) into unique tokens,
// keeping their order. Runs of spaces are tolerated.
func parseScope(s string) ([]string, error) {
	if len(s) > maxScopeLen {
		return nil, errors.New("too long")
	}
	var out []string
	for _, tok := range strings.Split(s, " ") {
		if tok == "" {
			continue
		}
		if !validScopeToken(tok) {
			return nil, errors.New("invalid scope token")
		}
		if !slices.Contains(out, tok) {
			out = append(out, tok)
		}
	}
	return out, nil
}

// normalizeScope returns s with its tokens validated, unique and joined by
// single spaces.
func normalizeScope(s string) (string, error) {
	toks, err := parseScope(s)
	return strings.Join(toks, " "), err
}

// validScopeToken reports whether s is an RFC 6749 scope-token: printable
// ASCII without space, double quote or backslash.
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// scopeCovers reports whether every token of want is in have.
func scopeCovers(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// joinScope renders scope tokens as a scope parameter.
func joinScope(toks []string) string { return strings.Join(toks, " ") }
