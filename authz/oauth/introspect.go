package oauth

import (
	"net/http"
	"strings"
)

// introspection is an RFC 7662 answer.
type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Subject   string `json:"sub,omitempty"`
	Audience  string `json:"aud,omitempty"`
	Issuer    string `json:"iss,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	ExpiresAt int64  `json:"exp,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
}

// handleIntrospect serves RFC 7662 token introspection to the client the
// token was issued to; for any other client every token is inactive. (The
// protected resources do not introspect: the ext_authz decision verifies
// tokens itself.)
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	c, raw, ok := s.tokenRequest(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.introspect(raw, c.ID))
}

func (s *Server) introspect(raw, clientID string) introspection {
	now := s.now()
	if rt := s.store.RefreshToken(hashSecret(raw)); rt != nil {
		if rt.ClientID != clientID || !rt.RevokedAt.IsZero() || !rt.RotatedAt.IsZero() ||
			!now.Before(rt.ExpiresAt) || s.store.Revoked("grant:"+rt.GrantID) {
			return introspection{}
		}
		return introspection{
			Active: true, Scope: rt.Scope, ClientID: rt.ClientID, Subject: rt.Subject,
			Audience: rt.Resource, Issuer: s.issuer, TokenType: "refresh_token",
			ExpiresAt: rt.ExpiresAt.Unix(), IssuedAt: rt.CreatedAt.Unix(),
		}
	}
	if strings.Count(raw, ".") != 2 {
		return introspection{}
	}
	claims, _, err := s.tokens.Verify(raw, now)
	if err != nil || claims.ClientID != clientID || s.store.Revoked("jti:"+claims.JTI) ||
		s.store.Revoked("grant:"+claims.GrantID) {
		return introspection{}
	}
	if known, revoked := s.ClientKnown(claims.ClientID); !known || revoked {
		return introspection{}
	}
	return introspection{
		Active: true, Scope: claims.Scope, ClientID: claims.ClientID, Subject: claims.Subject,
		Audience: claims.Audience, Issuer: claims.Issuer, TokenType: "Bearer",
		ExpiresAt: claims.ExpiresAt.Unix(), IssuedAt: claims.IssuedAt.Unix(),
	}
}
