package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/mcp-authz/mcp-authz/registry"
)

// OAuth error codes (RFC 6749 §4.1.2.1 and §5.2, RFC 7591 §3.2.2, RFC 8707).
const (
	errInvalidRequest          = "invalid_request"
	errInvalidClient           = "invalid_client"
	errInvalidGrant            = "invalid_grant"
	errUnauthorizedClient      = "unauthorized_client"
	errUnsupportedGrantType    = "unsupported_grant_type"
	errUnsupportedResponseType = "unsupported_response_type"
	errUnsupportedTokenType    = "unsupported_token_type"
	errInvalidScope            = "invalid_scope"
	errInvalidTarget           = "invalid_target"
	errAccessDenied            = "access_denied"
	errServerError             = "server_error"
	errTemporarilyUnavailable  = "temporarily_unavailable"
	errLoginRequired           = "login_required"
	errConsentRequired         = "consent_required"
	errInvalidRedirectURI      = "invalid_redirect_uri"
	errInvalidClientMetadata   = "invalid_client_metadata"
	errInvalidToken            = "invalid_token" // RFC 6750 §3.1
)

// oauthError is an error answer: what the client sees. The cause, if any,
// goes to the log only.
type oauthError struct {
	Status      int
	Code        string
	Description string
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func newError(status int, code, desc string) *oauthError {
	return &oauthError{Status: status, Code: code, Description: desc}
}

// storeError maps a registry write failure to the answer a client sees: a
// disk that cannot take writes is temporary (503), anything else is a
// server error (500).
func storeError(err error) *oauthError {
	if errors.Is(err, registry.ErrUnavailable) {
		return newError(http.StatusServiceUnavailable, errTemporarilyUnavailable,
			"the authorization server cannot store changes right now; retry later")
	}
	return newError(http.StatusInternalServerError, errServerError, "internal error")
}

// logStoreError logs a failed registry write. A disk that refuses writes is
// logged once by the registry itself, so each request it fails is only a
// debug line here; anything else is an error.
func (s *Server) logStoreError(msg string, args ...any) {
	level := slog.LevelError
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, registry.ErrUnavailable) {
			level = slog.LevelDebug
		}
	}
	s.log.Log(context.Background(), level, msg, args...)
}

// noStore marks a response as never cacheable (RFC 6749 §5.1).
func noStore(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// writeJSON answers status with v as JSON, never cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	noStore(h)
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// writeError answers an OAuth JSON error.
func writeError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, errorBody{Error: code, Description: desc})
}

// writeOAuthError answers e as JSON.
func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	writeError(w, e.Status, e.Code, e.Description)
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}
