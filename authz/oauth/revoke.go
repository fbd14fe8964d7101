package oauth

import (
	"net/http"
	"time"

	"github.com/mcp-authz/mcp-authz/registry"
)

// handleRevoke serves RFC 7009 token revocation. Revoking a refresh token
// revokes its whole grant, access tokens included; revoking an access token
// revokes that token. Tokens that are unknown or belong to another client
// are answered 200 like any other (RFC 7009 §2.2).
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	c, raw, ok := s.tokenRequest(w, r)
	if !ok {
		return
	}
	now := s.now().UTC()
	var write func(tx *registry.Txn) error
	if rt := s.store.RefreshToken(hashSecret(raw)); rt != nil {
		if rt.ClientID == c.ID {
			grant := rt.GrantID
			write = func(tx *registry.Txn) error {
				return revokeGrantTx(tx, grant, now, s.revocationTTL())
			}
		}
	} else if claims, _, err := s.tokens.Verify(raw, now); err == nil && claims.ClientID == c.ID {
		rev := &registry.Revocation{
			Key: "jti:" + claims.JTI, CreatedAt: now,
			ExpiresAt: claims.ExpiresAt.Add(s.cfg.Leeway + time.Minute),
		}
		write = func(tx *registry.Txn) error { return tx.PutRevocation(rev) }
	}
	if write != nil {
		if err := s.store.Update(r.Context(), write); err != nil {
			s.logStoreError("revoking token", "client_id", c.ID, "err", err)
			writeOAuthError(w, storeError(err))
			return
		}
		s.log.Info("token revoked", "client_id", c.ID, "token_fp", fingerprint(raw))
	}
	w.WriteHeader(http.StatusOK)
}

// tokenRequest reads a client-authenticated request about one token
// (revocation, introspection). It answers the request itself and returns
// false when the method, the form, the client or the token is wrong.
func (s *Server) tokenRequest(w http.ResponseWriter, r *http.Request) (*registry.Client,
	string, bool) {
	noStore(w.Header())
	if !allowMethods(w, r, http.MethodPost) {
		return nil, "", false
	}
	form, e := parseClientForm(w, r)
	if e != nil {
		writeOAuthError(w, e)
		return nil, "", false
	}
	c, e := s.authenticateClient(r, form)
	if e != nil {
		writeClientError(w, r, e)
		return nil, "", false
	}
	raw := form.Get("token")
	if raw == "" {
		writeOAuthError(w, badRequest(errInvalidRequest, "token is required"))
		return nil, "", false
	}
	return c, raw, true
}
