package oauth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
)

// randomToken returns n random bytes, base64url-encoded without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Sizes of the random values handed out, in bytes before encoding.
const (
	clientIDBytes     = 16 // 22 characters
	clientSecretBytes = 32
	codeBytes         = 32
	refreshBytes      = 32
	grantIDBytes      = 16
	flowIDBytes       = 24
	csrfBytes         = 24
	sessionBytes      = 32
)

// hashSecret returns the SHA-256 of a secret in lower-case hex: the only form
// in which codes, refresh tokens and client secrets are stored.
func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// fingerprint is a short, non-reversible label of a secret for logs: the
// first 12 hex digits of the SHA-256 of the raw value, the rule of the
// decision's token_fp (package authz), so that an operator can find one
// token in the logs of both. Log it under a key ending in _fp.
func fingerprint(s string) string { return hashSecret(s)[:fingerprintLen] }

// fingerprintLen is the length of a fingerprint in hex digits.
const fingerprintLen = 12

// equalSecret compares two strings in constant time (for equal lengths).
func equalSecret(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
