// Package admin is mcp-authz's operator API: list, show and revoke client
// registrations in a running server. It listens on loopback only and
// authenticates with a random token that the server writes, mode 0600, into
// its data directory together with its address, so that `mcp-authz clients`
// run by the same operator on the same machine finds and uses it. When no
// server runs, the command opens the registry directly with the same
// functions.
package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcp-authz/mcp-authz/registry"
)

// EndpointFile is the name, inside the data directory, of the file that
// tells the CLI where the running server's admin API is.
const EndpointFile = "admin.json"

// ErrNoClient is returned when a client id is not registered.
var ErrNoClient = errors.New("no such client")

// Endpoint locates a running server's admin API.
type Endpoint struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// NewToken returns a fresh random admin token.
func NewToken() string { return rand.Text() }

// WriteEndpoint records e in dir, readable by its owner only.
func WriteEndpoint(dir string, e Endpoint) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding admin endpoint: %w", err)
	}
	tmp := filepath.Join(dir, EndpointFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing admin endpoint: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, EndpointFile)); err != nil {
		return fmt.Errorf("writing admin endpoint: %w", err)
	}
	return nil
}

// ReadEndpoint reads the endpoint a server recorded in dir.
func ReadEndpoint(dir string) (Endpoint, error) {
	var e Endpoint
	data, err := os.ReadFile(filepath.Join(dir, EndpointFile))
	if err != nil {
		return e, fmt.Errorf("reading admin endpoint: %w", err)
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("parsing admin endpoint %s: %w", EndpointFile, err)
	}
	return e, nil
}

// RemoveEndpoint deletes the endpoint file at shutdown.
func RemoveEndpoint(dir string) error {
	err := os.Remove(filepath.Join(dir, EndpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// ClientView is what the operator sees of a registration: no secret, only
// whether one is set.
type ClientView struct {
	ID                      string    `json:"client_id"`
	Name                    string    `json:"client_name,omitempty"`
	RedirectURIs            []string  `json:"redirect_uris"`
	TokenEndpointAuthMethod string    `json:"token_endpoint_auth_method"`
	GrantTypes              []string  `json:"grant_types,omitempty"`
	Scope                   string    `json:"scope,omitempty"`
	HasSecret               bool      `json:"has_secret"`
	CreatedAt               time.Time `json:"created_at"`
	RevokedAt               time.Time `json:"revoked_at,omitzero"`
	RefreshTokens           int       `json:"active_refresh_tokens"`
}

// View returns the operator's view of c.
func View(store *registry.Store, c *registry.Client) ClientView {
	active := 0
	now := time.Now()
	for _, r := range store.RefreshTokensByClient(c.ID) {
		if r.RotatedAt.IsZero() && r.RevokedAt.IsZero() && now.Before(r.ExpiresAt) {
			active++
		}
	}
	return ClientView{
		ID: c.ID, Name: c.Name, RedirectURIs: c.RedirectURIs,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, GrantTypes: c.GrantTypes,
		Scope: c.Scope, HasSecret: c.SecretHash != "", CreatedAt: c.CreatedAt,
		RevokedAt: c.RevokedAt, RefreshTokens: active,
	}
}

// ListClients returns every registration.
func ListClients(store *registry.Store) []ClientView {
	clients := store.Clients()
	out := make([]ClientView, 0, len(clients))
	for _, c := range clients {
		out = append(out, View(store, c))
	}
	return out
}

// ShowClient returns one registration.
func ShowClient(store *registry.Store, id string) (ClientView, error) {
	c := store.Client(id)
	if c == nil {
		return ClientView{}, fmt.Errorf("showing client %q: %w", id, ErrNoClient)
	}
	return View(store, c), nil
}

// RevokeClient revokes a registration in one transaction: the client is
// kept, marked revoked, so that its id stays refused; its refresh tokens are
// marked revoked; its registration access token is cleared, so that RFC 7592
// management stops; and its authorization codes and the users' remembered
// consents are deleted, so that nothing authorizes it silently again. Its
// access tokens stop working at once because the decision checks the
// client. Revoking a revoked client changes nothing.
func RevokeClient(ctx context.Context, store *registry.Store, id string) (ClientView, error) {
	now := time.Now().UTC()
	err := store.Update(ctx, func(tx *registry.Txn) error {
		c := tx.Client(id)
		if c == nil {
			return ErrNoClient
		}
		if c.Revoked() {
			return nil
		}
		c = c.Copy()
		c.RevokedAt = now
		c.RegistrationTokenHash = ""
		var refresh []*registry.RefreshToken
		for _, r := range tx.RefreshTokensByClient(id) {
			rc := r.Copy()
			if rc.RevokedAt.IsZero() {
				rc.RevokedAt = now
			}
			refresh = append(refresh, rc)
		}
		// DeleteClient also deletes the client's codes and consents, through
		// the registry's index by client; the revoked client and its refresh
		// tokens are put back. The log records the net change.
		if err := tx.DeleteClient(id); err != nil {
			return err
		}
		if err := tx.PutClient(c); err != nil {
			return err
		}
		for _, r := range refresh {
			if err := tx.PutRefreshToken(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ClientView{}, fmt.Errorf("revoking client %q: %w", id, err)
	}
	return ShowClient(store, id)
}

// Handler serves the admin API for store, requiring token as a bearer token.
type Handler struct {
	store     *registry.Store
	tokenHash [32]byte
	logger    *slog.Logger
	mux       *http.ServeMux
}

// NewHandler returns the admin API handler.
func NewHandler(store *registry.Store, token string, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.Default()
	}
	h := &Handler{
		store:     store,
		tokenHash: sha256.Sum256([]byte(token)),
		logger:    logger.With("component", "admin"),
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /v1/clients", h.list)
	h.mux.HandleFunc("GET /v1/clients/{id}", h.show)
	h.mux.HandleFunc("POST /v1/clients/{id}/revoke", h.revoke)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	sum := sha256.Sum256([]byte(got))
	if !ok || subtle.ConstantTimeCompare(sum[:], h.tokenHash[:]) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) list(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, ListClients(h.store))
}

func (h *Handler) show(w http.ResponseWriter, r *http.Request) {
	v, err := ShowClient(h.store, r.PathValue("id"))
	h.answer(w, v, err)
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) {
	v, err := RevokeClient(r.Context(), h.store, r.PathValue("id"))
	if err == nil {
		h.logger.Info("client revoked by operator", "client_id", v.ID)
	}
	h.answer(w, v, err)
}

func (h *Handler) answer(w http.ResponseWriter, v ClientView, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, ErrNoClient):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case errors.Is(err, registry.ErrUnavailable):
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
	default:
		h.logger.Error("admin request", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
