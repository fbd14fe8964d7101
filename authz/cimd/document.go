package cimd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
	"github.com/mcp-authz/mcp-authz/registry"
)

// Document limits.
const (
	maxRedirectURIs = 20
	maxRedirectLen  = 2000
	maxShortField   = 200 // client_name, software_id, software_version
	maxScopeLen     = 2000
	maxContacts     = 10
)

// Values a document may use.
const (
	authNone          = "none"
	authPrivateKeyJWT = "private_key_jwt"
)

// document is the part of a client metadata document this server reads
// (RFC 7591 §2 member names); everything else is ignored.
type document struct {
	ClientID     *string `json:"client_id"`
	ClientSecret *string `json:"client_secret"`
	clientmeta.Metadata
}

// ParseDocument validates a client metadata document fetched from (or
// seeded for) clientID and returns the client it describes, built in
// memory and never stored: its ID is clientID, its authentication method
// none, its grant types those of the document this server supports
// (authorization_code, which is required, and refresh_token), and
// CreatedAt is now. Each redirect URI must be absolute, without fragment,
// user info or spaces, and pass validRedirect when it is not nil.
// Errors are *Error of kind ErrInvalidDocument.
func ParseDocument(clientID string, body []byte, validRedirect func(string) error,
	now time.Time) (*registry.Client, error) {
	bad := func(format string, args ...any) error {
		return &Error{Kind: ErrInvalidDocument, Detail: fmt.Sprintf(format, args...)}
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, bad("not a JSON object")
	}
	var d document
	if err := json.Unmarshal(body, &d); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			return nil, bad("%s has the wrong type", te.Field)
		}
		return nil, bad("not valid JSON")
	}
	switch {
	case d.ClientID == nil:
		return nil, bad("client_id is missing")
	case *d.ClientID != clientID:
		return nil, bad("client_id differs from the document's URL")
	case d.ClientSecret != nil:
		return nil, bad("a document must not contain client_secret")
	}
	switch d.TokenEndpointAuthMethod {
	case "", authNone:
	case authPrivateKeyJWT:
		return nil, bad("token_endpoint_auth_method private_key_jwt is not supported " +
			"by this server; use none")
	default:
		return nil, bad("token_endpoint_auth_method %q cannot be used with a metadata "+
			"document; use none", clientmeta.Truncate(d.TokenEndpointAuthMethod, 40))
	}
	if err := checkRedirects(d.RedirectURIs, validRedirect); err != nil {
		return nil, bad("%v", err)
	}
	grants, err := clientmeta.GrantTypes(d.GrantTypes)
	if err != nil {
		return nil, bad("%v", err)
	}
	if len(d.ResponseTypes) > 0 && !slices.Contains(d.ResponseTypes, "code") {
		return nil, bad("response_types must include code")
	}

	c := &registry.Client{
		ID:                      clientID,
		RedirectURIs:            clientmeta.Dedupe(d.RedirectURIs),
		TokenEndpointAuthMethod: authNone,
		GrantTypes:              grants,
		ResponseTypes:           []string{"code"},
		Scope:                   scopeOf(d.Scope),
		CreatedAt:               now.UTC(),
	}
	// Descriptive members are shown as unverified text; malformed ones are
	// dropped instead of failing the client.
	c.Name = textOr(d.ClientName, maxShortField)
	c.SoftwareID = textOr(d.SoftwareID, maxShortField)
	c.SoftwareVersion = textOr(d.SoftwareVersion, maxShortField)
	c.URI = webURLOr(d.ClientURI)
	c.LogoURI = webURLOr(d.LogoURI)
	if d.ApplicationType == "web" || d.ApplicationType == "native" {
		c.ApplicationType = d.ApplicationType
	}
	for _, ct := range d.Contacts {
		if len(c.Contacts) < maxContacts && ct != "" && textOr(ct, 320) == ct {
			c.Contacts = append(c.Contacts, ct)
		}
	}
	return c, nil
}

func checkRedirects(uris []string, valid func(string) error) error {
	switch {
	case len(uris) == 0:
		return errors.New("redirect_uris is required")
	case len(uris) > maxRedirectURIs:
		return fmt.Errorf("at most %d redirect_uris", maxRedirectURIs)
	}
	for _, u := range uris {
		err := minimalRedirect(u)
		if err == nil && valid != nil {
			err = valid(u)
		}
		if err != nil {
			return fmt.Errorf("redirect URI %q: %w", clientmeta.Truncate(u, 200), err)
		}
	}
	return nil
}

// minimalRedirect is the redirect URI check applied before the caller's:
// an absolute URI without fragment, user info or spaces.
func minimalRedirect(raw string) error {
	if raw == "" || len(raw) > maxRedirectLen || strings.ContainsAny(raw, "# \t\r\n") {
		return errors.New("empty, too long, or has a fragment or space")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.User != nil {
		return errors.New("not an absolute URI without user info")
	}
	return nil
}

// scopeOf keeps the valid, unique scope tokens of a scope member.
func scopeOf(s string) string {
	if len(s) > maxScopeLen {
		return ""
	}
	var out []string
	for _, t := range strings.Fields(s) {
		valid := true
		for i := 0; i < len(t); i++ {
			if c := t[i]; c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
				valid = false
			}
		}
		if valid && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return strings.Join(out, " ")
}

// textOr returns s when it passes clientmeta.CheckText, else "".
func textOr(s string, max int) string {
	if clientmeta.CheckText(s, max) != nil {
		return ""
	}
	return s
}

// webURLOr returns s when it is an absolute http(s) URL, else "".
func webURLOr(s string) string {
	if !clientmeta.IsWebURL(s, maxRedirectLen) {
		return ""
	}
	return s
}
