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
	noStore(w.Header())
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	form, e := parseClientForm(w, r)
	if e != nil {
		writeOAuthError(w, e)
		return
	}
	c, e := s.authenticateClient(r, form)
	if e != nil {
		writeClientError(w, r, e)
		return
	}
	raw := form.Get("token")
	if raw == "" {
		writeOAuthError(w, badRequest(errInvalidRequest, "token is required"))
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
			s.log.Error("revoking token", "client_id", c.ID, "err", err)
			writeOAuthError(w, storeError(err))
			return
		}
		s.log.Info("token revoked", "client_id", c.ID, "token", fingerprint(raw))
	}
	w.WriteHeader(http.StatusOK)
}
