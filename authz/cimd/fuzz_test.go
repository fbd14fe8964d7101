package cimd

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
)

// FuzzParseDocument checks that any document either is refused with an
// ErrInvalidDocument error or yields a public client for the code flow
// whose id is the URL and whose every redirect URI passes the validator.
func FuzzParseDocument(f *testing.F) {
	f.Add([]byte(docFor(testID, "")))
	f.Add([]byte(`{"client_id":"` + testID + `","redirect_uris":["cursor://a/cb"],` +
		`"token_endpoint_auth_method":"private_key_jwt"}`))
	f.Add([]byte(`{"client_id":"` + testID + `","client_secret":"x","redirect_uris":[]}`))
	f.Add([]byte(`{"client_id":"` + testID + `","redirect_uris":["https://a/cb"],` +
		`"client_name":"\u202e","scope":"a b a","contacts":["", "x"]}`))
	f.Add([]byte(`null`))
	noSpace := func(u string) error {
		if strings.ContainsFunc(u, unicode.IsSpace) {
			return errors.New("space")
		}
		return nil
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := ParseDocument(testID, body, noSpace, time.Time{})
		if err != nil {
			var e *Error
			if c != nil || !errors.As(err, &e) || !errors.Is(err, ErrInvalidDocument) {
				t.Fatalf("bad refusal %v, client %+v", err, c)
			}
			return
		}
		if c.ID != testID || c.TokenEndpointAuthMethod != "none" || c.SecretHash != "" {
			t.Fatalf("client %+v", c)
		}
		if len(c.RedirectURIs) == 0 || len(c.RedirectURIs) > maxRedirectURIs {
			t.Fatalf("redirect URIs %q", c.RedirectURIs)
		}
		for _, u := range c.RedirectURIs {
			if minimalRedirect(u) != nil || noSpace(u) != nil {
				t.Fatalf("accepted redirect URI %q", u)
			}
		}
		if !slices.Contains(c.GrantTypes, clientmeta.GrantAuthorizationCode) || len(c.GrantTypes) > 2 {
			t.Fatalf("grant types %q", c.GrantTypes)
		}
		if textOr(c.Name, maxShortField) != c.Name || strings.ContainsAny(c.Scope, "\"\\") {
			t.Fatalf("unsafe name %q or scope %q", c.Name, c.Scope)
		}
	})
}
