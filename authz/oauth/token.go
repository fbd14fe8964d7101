package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
	"github.com/mcp-authz/mcp-authz/registry"
)

// redemption is what a token exchange transaction found.
type redemption int

const (
	redeemed redemption = iota // the code or refresh token was spent now
	replayed                   // it had been spent before: the grant is revoked
	vanished                   // it was removed or revoked meanwhile
)

// tokenResponse is a successful token answer (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// handleToken serves the token endpoint.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	noStore(w.Header())
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	form, e := parseClientForm(w, r, "resource")
	if e != nil {
		writeOAuthError(w, e)
		return
	}
	c, e := s.authenticateClient(r, form)
	if e != nil {
		s.log.Info("token request refused", "client_id", clientmeta.Truncate(form.Get("client_id"), 64),
			"error", e.Code, "err", e.Description)
		writeClientError(w, r, e)
		return
	}
	var resp *tokenResponse
	switch gt := form.Get("grant_type"); gt {
	case grantAuthorizationCode:
		resp, e = s.exchangeCode(r.Context(), c, form)
	case grantRefreshToken:
		resp, e = s.refresh(r.Context(), c, form)
	case "":
		e = newError(http.StatusBadRequest, errInvalidRequest, "grant_type is required")
	default:
		e = newError(http.StatusBadRequest, errUnsupportedGrantType,
			"grant_type must be authorization_code or refresh_token")
	}
	if e != nil {
		s.log.Info("token request refused", "client_id", c.ID, "grant_type",
			clientmeta.Truncate(form.Get("grant_type"), 64), "error", e.Code, "err", e.Description)
		writeOAuthError(w, e)
		return
	}
	s.tokenIssued(form.Get("grant_type"))
	writeJSON(w, http.StatusOK, resp)
}

// exchangeCode redeems an authorization code (RFC 6749 §4.1.3, RFC 7636 §4.6).
// A code presented a second time revokes the grant it started.
func (s *Server) exchangeCode(ctx context.Context, c *registry.Client,
	f url.Values) (*tokenResponse, *oauthError) {
	code, verifier := f.Get("code"), f.Get("code_verifier")
	switch {
	case !hasGrantType(c, grantAuthorizationCode):
		return nil, badRequest(errUnauthorizedClient,
			"the client is not registered for the authorization_code grant")
	case code == "":
		return nil, badRequest(errInvalidRequest, "code is required")
	case verifier == "":
		return nil, badRequest(errInvalidRequest, "code_verifier is required")
	}
	invalid := badRequest(errInvalidGrant, "the code is invalid, expired or already used")
	hash := hashSecret(code)
	ac := s.store.AuthCode(hash)
	now := s.now().UTC()
	switch {
	case ac == nil:
		return nil, invalid
	case ac.ClientID != c.ID:
		s.log.Warn("code presented by another client", "client_id", c.ID,
			"code_client_id", ac.ClientID, "code_fp", fingerprint(code))
		return nil, invalid
	case ac.Used():
		s.revokeReplayed(ctx, ac.GrantID, "authorization code",
			slog.String("code_fp", fingerprint(code)))
		return nil, invalid
	case !now.Before(ac.ExpiresAt):
		return nil, invalid
	case s.store.Revoked("grant:" + ac.GrantID):
		return nil, invalid
	case s.store.Consent(ac.Subject, ac.ClientID) == nil:
		// Every code is issued under a stored consent; the user withdrew it.
		return nil, invalid
	case ac.RedirectURI != "" && f.Get("redirect_uri") != ac.RedirectURI,
		ac.RedirectURI == "" && f.Has("redirect_uri") &&
			!matchRedirectURI(c.RedirectURIs, f.Get("redirect_uri")):
		return nil, badRequest(errInvalidGrant,
			"redirect_uri differs from the authorization request")
	case !verifierMatches(verifier, ac.CodeChallenge):
		return nil, badRequest(errInvalidGrant, "code_verifier does not match the code_challenge")
	}
	if e := s.checkResource(f["resource"], ac.Resource); e != nil {
		return nil, e
	}

	resp, rt, e := s.mint(c, ac.Subject, ac.Scope, ac.Resource, ac.GrantID, now)
	if e != nil {
		return nil, e
	}
	outcome := redeemed
	err := s.store.Update(ctx, func(tx *registry.Txn) error {
		cur := tx.AuthCode(hash)
		switch {
		case cur == nil:
			outcome = vanished
			return nil
		case cur.Used():
			outcome = replayed
			return revokeGrantTx(tx, cur.GrantID, now, s.revocationTTL())
		}
		used := *cur
		used.UsedAt = now
		if err := tx.PutAuthCode(&used); err != nil {
			return err
		}
		if rt != nil {
			return tx.PutRefreshToken(rt)
		}
		return nil
	})
	if err != nil {
		s.logStoreError("redeeming code", "client_id", c.ID, "err", err)
		return nil, storeError(err)
	}
	switch outcome {
	case vanished:
		return nil, invalid
	case replayed:
		s.log.Warn("authorization code replayed; grant revoked", "client_id", c.ID,
			"grant_id", ac.GrantID, "code_fp", fingerprint(code))
		return nil, invalid
	}
	s.log.Info("tokens issued", "grant_type", grantAuthorizationCode, "client_id", c.ID,
		"sub", ac.Subject, "grant_id", ac.GrantID, "refresh", resp.RefreshToken != "")
	return resp, nil
}

// refresh rotates a refresh token (OAuth 2.1 §4.3). Presenting a token that
// was already rotated revokes its whole grant.
func (s *Server) refresh(ctx context.Context, c *registry.Client,
	f url.Values) (*tokenResponse, *oauthError) {
	raw := f.Get("refresh_token")
	switch {
	case !hasGrantType(c, grantRefreshToken):
		return nil, badRequest(errUnauthorizedClient,
			"the client is not registered for the refresh_token grant")
	case raw == "":
		return nil, badRequest(errInvalidRequest, "refresh_token is required")
	}
	invalid := badRequest(errInvalidGrant, "the refresh token is invalid, expired or revoked")
	hash := hashSecret(raw)
	old := s.store.RefreshToken(hash)
	now := s.now().UTC()
	switch {
	case old == nil:
		return nil, invalid
	case old.ClientID != c.ID:
		s.log.Warn("refresh token presented by another client", "client_id", c.ID,
			"token_client_id", old.ClientID, "refresh_token_fp", fingerprint(raw))
		return nil, invalid
	case !old.RevokedAt.IsZero():
		return nil, invalid
	case !old.RotatedAt.IsZero():
		s.revokeReplayed(ctx, old.GrantID, "refresh token",
			slog.String("refresh_token_fp", fingerprint(raw)))
		return nil, invalid
	case !now.Before(old.ExpiresAt), s.store.Revoked("grant:" + old.GrantID):
		return nil, invalid
	}
	scope, e := narrowScope(f, old.Scope)
	if e != nil {
		return nil, e
	}
	if e := s.checkResource(f["resource"], old.Resource); e != nil {
		return nil, e
	}

	resp, next, e := s.mint(c, old.Subject, scope, old.Resource, old.GrantID, now)
	if e != nil {
		return nil, e
	}
	next.Scope = old.Scope // the grant keeps its scope; only this access token narrows
	outcome := redeemed
	err := s.store.Update(ctx, func(tx *registry.Txn) error {
		cur := tx.RefreshToken(hash)
		switch {
		case cur == nil || !cur.RevokedAt.IsZero():
			outcome = vanished
			return nil
		case !cur.RotatedAt.IsZero():
			outcome = replayed
			return revokeGrantTx(tx, cur.GrantID, now, s.revocationTTL())
		}
		rotated := *cur
		rotated.RotatedAt = now
		if err := tx.PutRefreshToken(&rotated); err != nil {
			return err
		}
		return tx.PutRefreshToken(next)
	})
	if err != nil {
		s.logStoreError("rotating refresh token", "client_id", c.ID, "err", err)
		return nil, storeError(err)
	}
	switch outcome {
	case vanished:
		return nil, invalid
	case replayed:
		s.log.Warn("refresh token reused; grant revoked", "client_id", c.ID,
			"grant_id", old.GrantID, "refresh_token_fp", fingerprint(raw))
		return nil, invalid
	}
	s.log.Info("tokens issued", "grant_type", grantRefreshToken, "client_id", c.ID,
		"sub", old.Subject, "grant_id", old.GrantID)
	return resp, nil
}

// narrowScope returns the scope of the access token for a refresh: the
// grant's scope, or a subset of it named in the request.
func narrowScope(f url.Values, granted string) (string, *oauthError) {
	if !f.Has("scope") {
		return granted, nil
	}
	want, err := parseScope(f.Get("scope"))
	if err != nil {
		return "", badRequest(errInvalidScope, "scope: "+err.Error())
	}
	want = slices.DeleteFunc(want, func(t string) bool { return t == scopeOfflineAccess })
	have, _ := parseScope(granted)
	if !scopeCovers(have, want) {
		return "", badRequest(errInvalidScope, "a refresh cannot widen the scope")
	}
	if len(want) == 0 {
		return granted, nil
	}
	return joinScope(want), nil
}

// checkResource requires every resource parameter of a token request to name
// the resource the grant was issued for, and that resource to still be
// configured.
func (s *Server) checkResource(vals []string, granted string) *oauthError {
	for _, v := range vals {
		res, ok := s.cfg.Resource(v)
		if !ok || res.URL != granted {
			return badRequest(errInvalidTarget, "resource differs from the one authorized")
		}
	}
	if _, ok := s.cfg.Resource(granted); !ok {
		return badRequest(errInvalidGrant, "the resource is no longer protected by this server")
	}
	return nil
}

// mint signs an access token and, when the client may refresh, prepares the
// refresh token record to store.
func (s *Server) mint(c *registry.Client, subject, scope, resource, grantID string,
	now time.Time) (*tokenResponse, *registry.RefreshToken, *oauthError) {
	if e := s.checkConfiguredScope(c.ID, scope); e != nil {
		return nil, nil, e
	}
	at, claims, err := s.tokens.Mint(authz.AccessClaims{
		Subject: subject, Audience: resource, ClientID: c.ID, Scope: scope, GrantID: grantID,
	})
	if err != nil {
		s.log.Error("minting access token", "client_id", c.ID, "err", err)
		return nil, nil, newError(http.StatusInternalServerError, errServerError,
			"the access token could not be issued")
	}
	resp := &tokenResponse{
		AccessToken: at,
		TokenType:   "Bearer",
		ExpiresIn:   int64(claims.ExpiresAt.Sub(claims.IssuedAt) / time.Second),
		Scope:       scope,
	}
	if !hasGrantType(c, grantRefreshToken) {
		return resp, nil, nil
	}
	rt := randomToken(refreshBytes)
	resp.RefreshToken = rt
	return resp, &registry.RefreshToken{
		Hash:      hashSecret(rt),
		GrantID:   grantID,
		ClientID:  c.ID,
		Subject:   subject,
		Scope:     scope,
		Resource:  resource,
		CreatedAt: now,
		ExpiresAt: now.Add(s.cfg.RefreshTTL),
	}, nil
}

// revocationTTL is how long a grant revocation must be kept: until every
// access token issued before it has expired.
func (s *Server) revocationTTL() time.Duration {
	return s.cfg.AccessTokenTTL + s.cfg.Leeway + time.Minute
}

// revokeReplayed revokes a grant whose code or rotated refresh token was
// presented again. Failure to store the revocation is logged; the request is
// refused either way.
func (s *Server) revokeReplayed(ctx context.Context, grantID, what string, fp slog.Attr) {
	now := s.now().UTC()
	err := s.store.Update(ctx, func(tx *registry.Txn) error {
		return revokeGrantTx(tx, grantID, now, s.revocationTTL())
	})
	if err != nil {
		s.logStoreError("revoking replayed grant", "grant_id", grantID, "err", err)
		return
	}
	s.log.Warn(what+" replayed; grant revoked", "grant_id", grantID, fp)
}

// revokeGrantTx revokes every refresh token of a grant and records the
// grant's revocation, which makes its access tokens invalid.
func revokeGrantTx(tx *registry.Txn, grantID string, now time.Time, ttl time.Duration) error {
	for _, rt := range tx.RefreshTokensByGrant(grantID) {
		if !rt.RevokedAt.IsZero() {
			continue
		}
		n := *rt
		n.RevokedAt = now
		if err := tx.PutRefreshToken(&n); err != nil {
			return err
		}
	}
	return tx.PutRevocation(&registry.Revocation{
		Key: "grant:" + grantID, CreatedAt: now, ExpiresAt: now.Add(ttl),
	})
}

// verifierMatches checks a PKCE code_verifier (RFC 7636 §4.1: 43 to 128
// unreserved characters) against an S256 challenge.
func verifierMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for i := 0; i < len(verifier); i++ {
		c := verifier[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	return equalSecret(base64.RawURLEncoding.EncodeToString(sum[:]), challenge)
}

func badRequest(code, desc string) *oauthError {
	return newError(http.StatusBadRequest, code, desc)
}

// isForm reports whether a Content-Type is application/x-www-form-urlencoded.
func isForm(ctype string) bool {
	mt, _, err := mime.ParseMediaType(ctype)
	return err == nil && mt == "application/x-www-form-urlencoded"
}
