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
