package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
	"github.com/mcp-authz/mcp-authz/registry"
)

// Registration management (RFC 7592). A registration answer carries a
// registration_access_token and a registration_client_uri,
// <issuer>/register/<client_id>. With the token as a Bearer credential:
//
//   - GET reads the registration. The client secret is never in the answer:
//     only its hash is stored.
//   - PUT replaces the metadata, validated like a registration; client_id
//     must be the client's, and client_secret, when sent, its current
//     secret. The secret is kept while the client keeps a confidential
//     method, created (and answered) when it moves to one, and dropped when
//     it moves to none. Every update rotates the registration access token:
//     the answer carries the new one and the old one stops working.
//   - DELETE removes the client with its codes, refresh tokens and consents
//     and answers 204; its access tokens stop working at once, since every
//     decision checks that the client exists.
//
// A missing or wrong token, an unknown client and a client revoked by the
// operator get the same 401 invalid_token, so that the answer does not
// reveal which clients exist. A revoked client can neither read, update nor
// delete its registration: an update would drop the revocation, and a
// delete would erase the record that keeps the client id refused (for a
// client id metadata document URL too). The operator's revocation also
// clears the registration access token (authz/admin). Every write checks
// again, in its transaction, that the client is neither revoked nor its
// token rotated since the request was authorized, so a revocation that
// lands while a slow request body is read still wins. A GET answers from the
// registration read when the request arrived.
// Management is allowed in every registration mode.

// registrationTokenBytes is the size of a registration access token.
const registrationTokenBytes = 32

// registrationPath returns the client id of a management URI path.
func (s *Server) registrationPath(p string) (string, bool) {
	for _, prefix := range []string{s.basePath + pathRegister + "/", pathRegister + "/"} {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok || rest == "" || strings.Contains(rest, "/") {
			continue
		}
		id, err := url.PathUnescape(rest)
		if err != nil || id == "" {
			return "", false
		}
		return id, true
	}
	return "", false
}

// registrationURI is the client's registration_client_uri.
func (s *Server) registrationURI(clientID string) string {
	return s.base + pathRegister + "/" + url.PathEscape(clientID)
}

// serveManagement serves p when it is a registration management URI.
func (s *Server) serveManagement(w http.ResponseWriter, r *http.Request, p string) bool {
	id, ok := s.registrationPath(p)
	if !ok {
		return false
	}
	if r.Method == http.MethodOptions {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", corsHeaders)
		h.Set("Access-Control-Max-Age", "86400")
		h.Set("Allow", "GET, PUT, DELETE, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	cors(s.limited(LimitRegister, func(w http.ResponseWriter, r *http.Request) {
		s.handleManage(w, r, id)
	}))(w, r)
	return true
}

// handleManage serves RFC 7592 read, update and delete of one client.
func (s *Server) handleManage(w http.ResponseWriter, r *http.Request, id string) {
	noStore(w.Header())
	if !allowMethods(w, r, http.MethodGet, http.MethodPut, http.MethodDelete) {
		return
	}
	token, present := bearerCredential(r)
	c := s.store.Client(id)
	if c == nil || c.Revoked() || c.RegistrationTokenHash == "" || !present ||
		!equalSecret(hashSecret(token), c.RegistrationTokenHash) {
		if present {
			s.log.Info("registration management refused", "client_id", clientmeta.Truncate(id, 64),
				"token_fp", fingerprint(token))
		}
		writeManageUnauthorized(w, present)
		return
	}
	switch r.Method {
	case http.MethodGet:
		info := clientInfoOf(c, "")
		info.RegistrationClientURI = s.registrationURI(c.ID)
		writeJSON(w, http.StatusOK, info)
	case http.MethodPut:
		s.updateRegistration(w, r, c)
	case http.MethodDelete:
		s.deleteRegistration(w, r, c)
	}
}

// writeManageUnauthorized answers a management request without a valid
// registration access token (RFC 6750 §3.1).
func writeManageUnauthorized(w http.ResponseWriter, present bool) {
	challenge := `Bearer realm="registration"`
	if present {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, http.StatusUnauthorized, errInvalidToken,
		"the registration access token is missing or not valid for this client")
}

// updateRegistration replaces the metadata of c (RFC 7592 §2.2).
func (s *Server) updateRegistration(w http.ResponseWriter, r *http.Request,
	c *registry.Client) {
	body, oerr := s.readRegistrationBody(w, r)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	n, oerr := s.parseUpdate(body, c)
	if oerr != nil {
		s.log.Debug("registration update refused", "client_id", c.ID, "err", oerr.Description)
		writeOAuthError(w, oerr)
		return
	}

	var secret string
	switch {
	case n.TokenEndpointAuthMethod == authNone:
		// A public client has no secret: n has none.
	case c.SecretHash != "":
		n.SecretHash, n.SecretExpiresAt = c.SecretHash, c.SecretExpiresAt
	default:
		secret = randomToken(clientSecretBytes)
		n.SecretHash = hashSecret(secret)
	}
	rat := randomToken(registrationTokenBytes)
	n.RegistrationTokenHash = hashSecret(rat)
	n.ID, n.CreatedAt, n.UpdatedAt = c.ID, c.CreatedAt, s.now().UTC()

	err := s.store.Update(r.Context(), func(tx *registry.Txn) error {
		cur, err := stillManageable(tx, c)
		if err != nil {
			return err
		}
		n.RevokedAt = cur.RevokedAt // zero here: an update never drops a revocation
		return tx.PutClient(n)
	})
	switch {
	case errors.Is(err, errTokenRotated):
		writeManageUnauthorized(w, true)
		return
	case err != nil:
		s.logStoreError("updating client", "client_id", c.ID, "err", err)
		writeOAuthError(w, storeError(err))
		return
	}
	s.log.Info("client registration updated", "client_id", c.ID, "client_name", n.Name,
		"auth_method", n.TokenEndpointAuthMethod, "redirect_uris", n.RedirectURIs)
	info := clientInfoOf(n, secret)
	info.RegistrationAccessToken = rat
	info.RegistrationClientURI = s.registrationURI(n.ID)
	writeJSON(w, http.StatusOK, info)
}

// errTokenRotated aborts an update or delete whose registration access
// token was rotated, or whose client was removed or revoked, by a
// concurrent request.
var errTokenRotated = errors.New("registration access token rotated meanwhile")

// stillManageable returns the current record of c, read in tx, when c may
// still be changed with the registration access token that authorized the
// request: the client exists, is not revoked, and its token was not
// rotated. Otherwise it returns errTokenRotated.
func stillManageable(tx *registry.Txn, c *registry.Client) (*registry.Client, error) {
	cur := tx.Client(c.ID)
	if cur == nil || cur.Revoked() || cur.RegistrationTokenHash != c.RegistrationTokenHash {
		return nil, errTokenRotated
	}
	return cur, nil
}

// parseUpdate validates an update request for c and returns the new client
// (without id, secret, token or times).
func (s *Server) parseUpdate(body []byte, c *registry.Client) (*registry.Client, *oauthError) {
	bad := func(format string, args ...any) *oauthError {
		return newError(http.StatusBadRequest, errInvalidClientMetadata,
			fmt.Sprintf(format, args...))
	}
	var ids struct {
		ClientID     *string `json:"client_id"`
		ClientSecret *string `json:"client_secret"`
	}
	n, oerr := parseClientMetadataWith(body, s.policy.limits())
	if oerr != nil {
		return nil, oerr
	}
	if err := json.Unmarshal(body, &ids); err != nil {
		return nil, bad("client_id and client_secret must be strings")
	}
	switch {
	case ids.ClientID == nil:
		return nil, bad("client_id is required in an update")
	case *ids.ClientID != c.ID:
		return nil, bad("client_id does not match the registration")
	case ids.ClientSecret != nil && (c.SecretHash == "" ||
		!equalSecret(hashSecret(*ids.ClientSecret), c.SecretHash)):
		return nil, bad("client_secret does not match the issued secret; " +
			"a client cannot choose its own secret")
	}
	if oerr := s.checkRedirectPolicy(n.RedirectURIs); oerr != nil {
		return nil, oerr
	}
	return n, nil
}

// deleteRegistration removes c (RFC 7592 §2.3).
func (s *Server) deleteRegistration(w http.ResponseWriter, r *http.Request,
	c *registry.Client) {
	err := s.store.Update(r.Context(), func(tx *registry.Txn) error {
		if _, err := stillManageable(tx, c); err != nil {
			return err
		}
		return tx.DeleteClient(c.ID)
	})
	switch {
	case errors.Is(err, errTokenRotated):
		writeManageUnauthorized(w, true)
		return
	case err != nil:
		s.logStoreError("deleting client", "client_id", c.ID, "err", err)
		writeOAuthError(w, storeError(err))
		return
	}
	s.log.Info("client registration deleted", "client_id", c.ID, "client_name", c.Name)
	w.WriteHeader(http.StatusNoContent)
}

// readRegistrationBody reads a JSON registration or update body within the
// policy's size limit.
func (s *Server) readRegistrationBody(w http.ResponseWriter, r *http.Request) ([]byte,
	*oauthError) {
	if !isJSON(r.Header.Get("Content-Type")) {
		return nil, newError(http.StatusUnsupportedMediaType, errInvalidClientMetadata,
			"the registration request must be application/json")
	}
	return readBodyLimited(w, r, s.policy.MaxBodyBytes, errInvalidClientMetadata)
}
