package registry

import (
	"crypto/sha256"
	"encoding/hex"
)

// fingerprint returns a short, non-reversible label for a secret or a hash of
// one, fit for logs, errors and dumps.
func fingerprint(secret string) string {
	if secret == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(secret))
	return "fp:" + hex.EncodeToString(sum[:4])
}

// hashFingerprint labels a stored hex SHA-256 of a secret (codes, refresh
// tokens, client secrets, registration tokens) by its first 12 hex digits:
// the same label the other packages log for the raw secret, so an operator
// can match a dump or an error against the logs.
// Anything that is not a hex SHA-256 gets fingerprint instead.
func hashFingerprint(hexHash string) string {
	if len(hexHash) != 2*sha256.Size {
		return fingerprint(hexHash)
	}
	if _, err := hex.DecodeString(hexHash); err != nil {
		return fingerprint(hexHash)
	}
	return hexHash[:12]
}
