package authz

import "strings"

// bearerToken extracts the bearer token (RFC 6750 §2.1) from every
// Authorization value of a request. It refuses ambiguity rather than pick a
// token: more than one value, or one value holding a comma (how proxies join
// repeated headers), is ReasonMultipleTokens. No value, an empty value or
// another scheme (Basic, DPoP) is ReasonNoToken: the request carries no bearer
// token at all. A Bearer value whose token is missing, holds whitespace or
// characters outside the b64token syntax is ReasonMalformed.
func bearerToken(values []string) (string, Reason) {
	switch len(values) {
	case 0:
		return "", ReasonNoToken
	case 1:
	default:
		return "", ReasonMultipleTokens
	}
	v := strings.Trim(values[0], " \t")
	if v == "" {
		return "", ReasonNoToken
	}
	if strings.IndexByte(v, ',') >= 0 {
		return "", ReasonMultipleTokens
	}
	i := strings.IndexAny(v, " \t")
	if i < 0 {
		if strings.EqualFold(v, "Bearer") {
			return "", ReasonMalformed
		}
		return "", ReasonNoToken
	}
	if !strings.EqualFold(v[:i], "Bearer") {
		return "", ReasonNoToken
	}
	tok := strings.TrimLeft(v[i:], " \t")
	if !isB64Token(tok) {
		return "", ReasonMalformed
	}
	return tok, ReasonOK
}

// isB64Token reports whether s matches RFC 6750's
// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	n := len(s)
	for n > 0 && s[n-1] == '=' {
		n--
	}
	if n == 0 {
		return false
	}
	for i := 0; i < n; i++ {
		if !b64TokenChar[s[i]] {
			return false
		}
	}
	return true
}

// b64TokenChar marks the bytes a b64token is made of, before its padding.
var b64TokenChar = func() (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-._~+/", byte(c)) >= 0
	}
	return t
}()
