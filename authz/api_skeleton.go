package authz

// NOTE(skeleton): signatures agreed between the authz core and its users.
// The authz core work replaces these stub bodies (and may move them to
// better-named files) without changing the signatures.

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/mcp-authz/mcp-authz/registry"
)

var errTODO = errors.New("authz: not implemented yet")

// Resource is a protected resource: one MCP server URL behind the proxy.
type Resource struct {
	// URL is the canonical resource URL, e.g. http://localhost:8080/mcp.
	URL string
	// Scopes are the scopes published in the resource's metadata.
	Scopes []string
	// RequiredScopes are needed by every request to the resource.
	RequiredScopes []string
}

// Config is the authorization server's and decision's shared configuration.
type Config struct {
	// Issuer is the exact issuer identifier, e.g. http://localhost:9000.
	Issuer string
	// Resources are the protected resources; at least one.
	Resources []Resource
	// AccessTokenTTL is the lifetime of access tokens (default 1h).
	AccessTokenTTL time.Duration
	// Leeway is the clock skew tolerated on exp and nbf (default 30s).
	Leeway time.Duration
}

// AccessClaims are the claims of an access token (RFC 9068).
type AccessClaims struct {
	Issuer    string
	Subject   string
	Audience  string
	ClientID  string
	Scope     string
	JTI       string
	GrantID   string
	IssuedAt  time.Time
	NotBefore time.Time
	ExpiresAt time.Time
}

// Keys manages the token signing keys kept in the registry.
type Keys struct{}

// NewKeys loads the signing keys from store, creating an ES256 key on first
// start.
func NewKeys(ctx context.Context, store *registry.Store, logger *slog.Logger) (*Keys, error) {
	return nil, errTODO
}

// JWKS returns the public JSON Web Key Set document.
func (k *Keys) JWKS() ([]byte, error) { return nil, errTODO }

// Tokens mints and verifies access tokens.
type Tokens struct{}

// NewTokens returns a token service for cfg signing with keys.
func NewTokens(cfg Config, keys *Keys) *Tokens { return &Tokens{} }

// Mint signs an access token for c, filling Issuer, IssuedAt, ExpiresAt
// and JTI when they are empty. It returns the token and its claims.
func (t *Tokens) Mint(c AccessClaims) (string, AccessClaims, error) {
	return "", c, errTODO
}

// Verify checks a token's signature, typ, issuer and times. The Reason says
// why a token was refused.
func (t *Tokens) Verify(raw string, now time.Time) (*AccessClaims, Reason, error) {
	return nil, ReasonMalformed, errTODO
}

// Decider answers Requests from tokens and the registry.
type Decider struct{}

// NewDecider returns a Decider.
func NewDecider(cfg Config, tokens *Tokens, store *registry.Store, logger *slog.Logger) *Decider {
	return &Decider{}
}

// Check decides one request. It never blocks on I/O.
func (d *Decider) Check(ctx context.Context, req *Request) *Decision {
	return &Decision{Allow: false, Reason: ReasonNoToken, Status: 401}
}
