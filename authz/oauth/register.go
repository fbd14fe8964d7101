package oauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
	"github.com/mcp-authz/mcp-authz/registry"
)

// Token endpoint authentication methods (RFC 7591 §2).
const (
	authNone        = "none"
	authSecretPost  = "client_secret_post"
	authSecretBasic = "client_secret_basic"
)

// Grant types.
const (
	grantAuthorizationCode = clientmeta.GrantAuthorizationCode
	grantRefreshToken      = clientmeta.GrantRefreshToken
)

// Fixed registration limits; the others are in RegistrationPolicy.
const (
	maxContacts = 10
	maxScopeLen = 2000
)

// metadataLimits are the configurable bounds on client metadata.
type metadataLimits struct {
	redirectURIs int // entries of redirect_uris
	uriLen       int // each redirect URI, client_uri, logo_uri
	textLen      int // client_name, software_id, software_version
}

// defaultMetadataLimits are the limits of the default RegistrationPolicy.
var defaultMetadataLimits = metadataLimits{
	redirectURIs: DefaultMaxRedirectURIs, uriLen: DefaultMaxURILength,
	textLen: DefaultMaxTextLength,
}

// clientMetadata is the part of an RFC 7591 registration request this server
// understands.
type clientMetadata = clientmeta.Metadata

// clientInfo is the registration answer (RFC 7591 §3.2.1).
type clientInfo struct {
	ClientID                string   `json:"client_id"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	ApplicationType         string   `json:"application_type,omitempty"`
	Contacts                []string `json:"contacts,omitempty"`
	SoftwareID              string   `json:"software_id,omitempty"`
	SoftwareVersion         string   `json:"software_version,omitempty"`
	// RFC 7592: the registration access token (only when just issued) and
	// the URI where the client reads, updates and deletes its registration.
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri,omitempty"`
}

// handleRegister serves RFC 7591 dynamic client registration, subject to
// the registration policy (policy.go). The answer carries an RFC 7592
// registration access token; only its SHA-256 is stored.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	if !s.registrationAllowed(w, r) {
		return
	}
	body, oerr := s.readRegistrationBody(w, r)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	c, oerr := parseClientMetadataWith(body, s.policy.limits())
	if oerr == nil {
		oerr = s.checkRedirectPolicy(c.RedirectURIs)
	}
	if oerr != nil {
		s.log.Debug("registration refused", "err", oerr.Description)
		writeOAuthError(w, oerr)
		return
	}

	var secret string
	if c.TokenEndpointAuthMethod != authNone {
		secret = randomToken(clientSecretBytes)
		c.SecretHash = hashSecret(secret)
	}
	rat := randomToken(registrationTokenBytes)
	c.RegistrationTokenHash = hashSecret(rat)
	c.CreatedAt = s.now().UTC()
	err := s.store.Update(r.Context(), func(tx *registry.Txn) error {
		for c.ID == "" || tx.Client(c.ID) != nil || s.reservedClientID(c.ID) {
			c.ID = randomToken(clientIDBytes)
		}
		return tx.PutClient(c)
	})
	if err != nil {
		s.logStoreError("storing client", "err", err)
		writeOAuthError(w, storeError(err))
		return
	}
	s.log.Info("client registered", "client_id", c.ID, "client_name", c.Name,
		"auth_method", c.TokenEndpointAuthMethod, "redirect_uris", c.RedirectURIs)
	if s.cfg.OnRegistration != nil {
		s.cfg.OnRegistration()
	}
	info := clientInfoOf(c, secret)
	info.RegistrationAccessToken = rat
	info.RegistrationClientURI = s.registrationURI(c.ID)
	writeJSON(w, http.StatusCreated, info)
}

// tokenIssued reports a successful token answer to Config.OnTokenIssued.
func (s *Server) tokenIssued(grantType string) {
	if s.cfg.OnTokenIssued != nil {
		s.cfg.OnTokenIssued(grantType)
	}
}

// clientInfoOf renders a stored client, with its secret when just issued.
func clientInfoOf(c *registry.Client, secret string) clientInfo {
	info := clientInfo{
		ClientID:                c.ID,
		ClientIDIssuedAt:        c.CreatedAt.Unix(),
		ClientSecret:            secret,
		RedirectURIs:            c.RedirectURIs,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
		GrantTypes:              c.GrantTypes,
		ResponseTypes:           c.ResponseTypes,
		ClientName:              c.Name,
		ClientURI:               c.URI,
		LogoURI:                 c.LogoURI,
		Scope:                   c.Scope,
		ApplicationType:         c.ApplicationType,
		Contacts:                c.Contacts,
		SoftwareID:              c.SoftwareID,
		SoftwareVersion:         c.SoftwareVersion,
	}
	if c.SecretHash != "" {
		var exp int64
		if !c.SecretExpiresAt.IsZero() {
			exp = c.SecretExpiresAt.Unix()
		}
		info.ClientSecretExpiresAt = &exp
	}
	return info
}

// isJSON reports whether a Content-Type is application/json or +json.
func isJSON(ctype string) bool {
	mt, _, err := mime.ParseMediaType(ctype)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// parseClientMetadata validates a registration request body under the
// default limits and returns the client to register (without id, secret or
// times). Errors are the RFC 7591 answer to send. The redirect allow and
// deny lists are not applied: see Server.checkRedirectPolicy.
func parseClientMetadata(body []byte) (*registry.Client, *oauthError) {
	return parseClientMetadataWith(body, defaultMetadataLimits)
}

// parseClientMetadataWith is parseClientMetadata under the limits lim.
func parseClientMetadataWith(body []byte, lim metadataLimits) (*registry.Client, *oauthError) {
	bad := func(format string, args ...any) *oauthError {
		return newError(http.StatusBadRequest, errInvalidClientMetadata, fmt.Sprintf(format, args...))
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, bad("the registration request must be a JSON object")
	}
	var m clientMetadata
	if err := json.Unmarshal(body, &m); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			return nil, bad("%s has the wrong type", te.Field)
		}
		return nil, bad("the registration request is not valid JSON")
	}

	c := &registry.Client{
		TokenEndpointAuthMethod: m.TokenEndpointAuthMethod,
		Name:                    m.ClientName,
		URI:                     m.ClientURI,
		LogoURI:                 m.LogoURI,
		ApplicationType:         m.ApplicationType,
		SoftwareID:              m.SoftwareID,
		SoftwareVersion:         m.SoftwareVersion,
	}
	if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = authSecretBasic // RFC 7591 §2 default
	}
	if !slices.Contains(supportedAuthMethods, c.TokenEndpointAuthMethod) {
		return nil, bad("token_endpoint_auth_method %q is not supported; use none, "+
			"client_secret_post or client_secret_basic", c.TokenEndpointAuthMethod)
	}

	var err error
	if c.GrantTypes, err = clientmeta.GrantTypes(m.GrantTypes); err != nil {
		return nil, bad("%v", err)
	}
	if !slices.Contains(m.ResponseTypes, "code") && len(m.ResponseTypes) > 0 {
		return nil, bad("response_types must include code")
	}
	c.ResponseTypes = []string{"code"}

	if oerr := checkRedirectURIs(m.RedirectURIs, lim); oerr != nil {
		return nil, oerr
	}
	c.RedirectURIs = clientmeta.Dedupe(m.RedirectURIs)

	if c.Scope, err = normalizeScope(m.Scope); err != nil {
		return nil, bad("scope: %v", err)
	}
	if err := checkOptionalFields(&m, lim); err != nil {
		return nil, bad("%v", err)
	}
	if len(m.Contacts) > 0 {
		c.Contacts = slices.Clone(m.Contacts)
	}
	return c, nil
}

func checkRedirectURIs(uris []string, lim metadataLimits) *oauthError {
	switch {
	case len(uris) == 0:
		return newError(http.StatusBadRequest, errInvalidRedirectURI,
			"redirect_uris is required")
	case len(uris) > lim.redirectURIs:
		return newError(http.StatusBadRequest, errInvalidRedirectURI,
			fmt.Sprintf("at most %d redirect_uris", lim.redirectURIs))
	}
	for _, u := range uris {
		err := validateRedirectURI(u)
		if err == nil && len(u) > lim.uriLen {
			err = fmt.Errorf("longer than %d bytes", lim.uriLen)
		}
		if err != nil {
			return newError(http.StatusBadRequest, errInvalidRedirectURI,
				fmt.Sprintf("redirect URI %q: %v", clientmeta.Truncate(u, 200), err))
		}
	}
	return nil
}

// checkOptionalFields validates the descriptive metadata.
func checkOptionalFields(m *clientMetadata, lim metadataLimits) error {
	// Fixed order, so a request with several bad fields always gets the
	// same error description.
	for _, f := range [][2]string{
		{"client_name", m.ClientName}, {"software_id", m.SoftwareID},
		{"software_version", m.SoftwareVersion},
	} {
		if err := clientmeta.CheckText(f[1], lim.textLen); err != nil {
			return fmt.Errorf("%s: %w", f[0], err)
		}
	}
	for _, f := range [][2]string{{"client_uri", m.ClientURI}, {"logo_uri", m.LogoURI}} {
		if v := f[1]; v != "" && (len(v) > lim.uriLen || !clientmeta.IsWebURL(v, maxRedirectURILen)) {
			return fmt.Errorf("%s must be an absolute http(s) URL", f[0])
		}
	}
	switch m.ApplicationType {
	case "", "web", "native":
	default:
		return fmt.Errorf("application_type must be web or native")
	}
	if len(m.Contacts) > maxContacts {
		return fmt.Errorf("at most %d contacts", maxContacts)
	}
	for _, c := range m.Contacts {
		if err := clientmeta.CheckText(c, 320); err != nil || c == "" {
			return errors.New("contacts must be short non-empty strings")
		}
	}
	return nil
}
