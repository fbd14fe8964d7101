package registry

import (
	"slices"
	"time"
)

// Client is a registered OAuth client. Records returned by the store are shared
// and must never be mutated; call Copy first.
type Client struct {
	ID                      string    `json:"client_id"`
	SecretHash              string    `json:"secret_hash,omitempty"`
	SecretExpiresAt         time.Time `json:"secret_expires_at,omitzero"`
	RedirectURIs            []string  `json:"redirect_uris"`
	TokenEndpointAuthMethod string    `json:"token_endpoint_auth_method"`
	GrantTypes              []string  `json:"grant_types,omitempty"`
	ResponseTypes           []string  `json:"response_types,omitempty"`
	Name                    string    `json:"client_name,omitempty"`
	URI                     string    `json:"client_uri,omitempty"`
	LogoURI                 string    `json:"logo_uri,omitempty"`
	Scope                   string    `json:"scope,omitempty"`
	ApplicationType         string    `json:"application_type,omitempty"`
	Contacts                []string  `json:"contacts,omitempty"`
	SoftwareID              string    `json:"software_id,omitempty"`
	SoftwareVersion         string    `json:"software_version,omitempty"`
	RegistrationTokenHash   string    `json:"registration_token_hash,omitempty"`
	CreatedAt               time.Time `json:"created_at"`
	UpdatedAt               time.Time `json:"updated_at,omitzero"`
	RevokedAt               time.Time `json:"revoked_at,omitzero"`
}

// Revoked reports whether the client has been revoked by an operator.
func (c *Client) Revoked() bool { return !c.RevokedAt.IsZero() }

// Copy returns a deep copy of c that the caller may mutate.
func (c *Client) Copy() *Client {
	n := *c
	n.RedirectURIs = slices.Clone(c.RedirectURIs)
	n.GrantTypes = slices.Clone(c.GrantTypes)
	n.ResponseTypes = slices.Clone(c.ResponseTypes)
	n.Contacts = slices.Clone(c.Contacts)
	return &n
}

// AuthCode is an issued authorization code. Only the SHA-256 of the code is
// kept; the code itself is never stored.
type AuthCode struct {
	Hash          string    `json:"hash"`
	ClientID      string    `json:"client_id"`
	RedirectURI   string    `json:"redirect_uri"`
	Subject       string    `json:"sub"`
	Scope         string    `json:"scope,omitempty"`
	Resource      string    `json:"resource"`
	CodeChallenge string    `json:"code_challenge"`
	GrantID       string    `json:"grant_id"`
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	UsedAt        time.Time `json:"used_at,omitzero"`
}

// Used reports whether the code has already been exchanged.
func (c *AuthCode) Used() bool { return !c.UsedAt.IsZero() }

// RefreshToken is an issued refresh token, stored by its SHA-256. Tokens that
// descend from one authorization code share a GrantID (the token family).
type RefreshToken struct {
	Hash      string    `json:"hash"`
	GrantID   string    `json:"grant_id"`
	ClientID  string    `json:"client_id"`
	Subject   string    `json:"sub"`
	Scope     string    `json:"scope,omitempty"`
	Resource  string    `json:"resource"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	RotatedAt time.Time `json:"rotated_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Consent records that a user allowed a client the given scopes.
type Consent struct {
	Subject   string    `json:"sub"`
	ClientID  string    `json:"client_id"`
	Scope     string    `json:"scope,omitempty"`
	GrantedAt time.Time `json:"granted_at"`
	// Resource is the protected resource the consent was given for; empty
	// in consents written before version 2 snapshots, which cover nothing.
	Resource string `json:"resource,omitempty"`
}

// SigningKey is a token signing key. PrivateKey holds the PKCS #8 DER
// encoding. A key signs while it is the newest not retired; it stays published
// until RetireAt has passed.
type SigningKey struct {
	ID         string    `json:"kid"`
	Algorithm  string    `json:"alg"`
	PrivateKey []byte    `json:"private_key"`
	CreatedAt  time.Time `json:"created_at"`
	RetireAt   time.Time `json:"retire_at,omitzero"`
}

// User is a local user who can log in on the authorization page.
type User struct {
	Name         string    `json:"name"`
	PasswordHash string    `json:"password_hash"`
	CreatedAt    time.Time `json:"created_at"`
}

// Revocation marks an access token (by "jti:<id>"), a whole grant (by
// "grant:<id>") or every token a user gave a client before CreatedAt (by
// "consent:<subject>\x00<client id>", written when the user withdraws a
// consent) as revoked until ExpiresAt, after which no token it covers can
// still be valid and the entry may be dropped.
type Revocation struct {
	Key       string    `json:"key"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
}

// Copy returns a copy of c that the caller may mutate.
func (c *AuthCode) Copy() *AuthCode { n := *c; return &n }

// Copy returns a copy of r that the caller may mutate.
func (r *RefreshToken) Copy() *RefreshToken { n := *r; return &n }

// Copy returns a copy of c that the caller may mutate.
func (c *Consent) Copy() *Consent { n := *c; return &n }

// Copy returns a deep copy of k that the caller may mutate.
func (k *SigningKey) Copy() *SigningKey {
	n := *k
	n.PrivateKey = slices.Clone(k.PrivateKey)
	return &n
}

// Copy returns a copy of u that the caller may mutate.
func (u *User) Copy() *User { n := *u; return &n }

// Copy returns a copy of r that the caller may mutate.
func (r *Revocation) Copy() *Revocation { n := *r; return &n }
