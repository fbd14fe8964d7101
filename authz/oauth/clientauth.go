package oauth

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
	"github.com/mcp-authz/mcp-authz/registry"
)

// authenticateClient authenticates the client of a token, revocation or
// introspection request (RFC 6749 §2.3): HTTP Basic with form-encoded
// credentials, client_secret in the form, or for public clients client_id
// alone (an empty secret, in the form or in Basic, counts as none). The
// method must be the one the client registered. Unknown and
// revoked clients and wrong secrets get 401 invalid_client, which clients
// answer by registering again.
func (s *Server) authenticateClient(r *http.Request, form url.Values) (*registry.Client,
	*oauthError) {
	unauthorized := func(desc string) *oauthError {
		return newError(http.StatusUnauthorized, errInvalidClient, desc)
	}
	var id, secret, method string
	user, pass, basic := r.BasicAuth()
	switch {
	case basic:
		var err1, err2 error
		id, err1 = url.QueryUnescape(user)
		secret, err2 = url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return nil, unauthorized("malformed Basic credentials")
		}
		if form.Get("client_secret") != "" {
			return nil, newError(http.StatusBadRequest, errInvalidRequest,
				"use only one client authentication method")
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return nil, unauthorized("client_id differs from the Basic credentials")
		}
		method = authSecretBasic
		if secret == "" {
			method = authNone // some libraries send public clients' ids this way
		}
	case form.Get("client_secret") != "":
		id, secret, method = form.Get("client_id"), form.Get("client_secret"), authSecretPost
	default:
		id, method = form.Get("client_id"), authNone
	}
	if id == "" {
		return nil, unauthorized("client authentication is required")
	}

	rc, e := s.resolveClient(r.Context(), id, "")
	if e != nil {
		return nil, unauthorized(e.Description)
	}
	if rc.kind == kindStatic || rc.kind == kindDev {
		return s.authenticateConfigured(r.Context(), rc, method, secret)
	}
	c := rc.Client
	registered := c.TokenEndpointAuthMethod
	if registered == "" && c.SecretHash == "" {
		registered = authNone
	}
	if registered != "" && method != registered {
		return nil, unauthorized("the client must authenticate with " + registered)
	}
	if method == authNone {
		return c, nil
	}
	if c.SecretHash == "" || !equalSecret(hashSecret(secret), c.SecretHash) {
		return nil, unauthorized("wrong client secret")
	}
	if !c.SecretExpiresAt.IsZero() && !s.now().Before(c.SecretExpiresAt) {
		return nil, unauthorized("the client secret has expired")
	}
	return c, nil
}

// writeClientError answers a client authentication failure, with a Basic
// challenge when the client tried Basic (RFC 6749 §5.2).
func writeClientError(w http.ResponseWriter, r *http.Request, e *oauthError) {
	if _, _, basic := r.BasicAuth(); basic && e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="mcp-authz", charset="UTF-8"`)
	}
	writeOAuthError(w, e)
}

// hasGrantType reports whether a client may use a grant type; a client
// stored without grant types has the RFC 7591 default, authorization_code.
func hasGrantType(c *registry.Client, grant string) bool {
	if len(c.GrantTypes) == 0 {
		return grant == grantAuthorizationCode
	}
	return slices.Contains(c.GrantTypes, grant)
}

// parseClientForm reads an application/x-www-form-urlencoded body of at most
// maxFormBody bytes (body.go), refusing repeated parameters except those in
// multi.
func parseClientForm(w http.ResponseWriter, r *http.Request, multi ...string) (url.Values,
	*oauthError) {
	bad := func(desc string) *oauthError {
		return newError(http.StatusBadRequest, errInvalidRequest, desc)
	}
	if !isForm(r.Header.Get("Content-Type")) {
		return nil, bad("the request must be application/x-www-form-urlencoded")
	}
	if e := parseFormBody(w, r); e != nil {
		return nil, e
	}
	for k, v := range r.PostForm {
		if len(v) > 1 && !slices.Contains(multi, k) {
			return nil, bad("parameter " + clientmeta.Truncate(k, 40) + " must be sent once")
		}
	}
	return r.PostForm, nil
}
