package registry

import (
	"slices"
	"strings"
)

// Client returns the client with the given id, or nil. It is on the hot path
// of every ext_authz decision.
func (s *Store) Client(id string) *Client { return first[Client](s.layers(), tableClients, id) }

// Clients returns every client ordered by id.
func (s *Store) Clients() []*Client {
	return all[Client](s.layers(), tableClients, indexID)
}

// AuthCode returns the authorization code with the given hash, or nil.
func (s *Store) AuthCode(hash string) *AuthCode {
	return first[AuthCode](s.layers(), tableCodes, hash)
}

// RefreshToken returns the refresh token with the given hash, or nil.
func (s *Store) RefreshToken(hash string) *RefreshToken {
	return first[RefreshToken](s.layers(), tableRefreshTokens, hash)
}

// RefreshTokensByClient returns every refresh token issued to a client.
func (s *Store) RefreshTokensByClient(clientID string) []*RefreshToken {
	return all[RefreshToken](s.layers(), tableRefreshTokens, indexClient, clientID)
}

// Consent returns the consent of subject for clientID, or nil.
func (s *Store) Consent(subject, clientID string) *Consent {
	return lookup[Consent](s.layers(), tableConsents, subject, clientID)
}

// Consents returns every consent given by subject, ordered by client id.
func (s *Store) Consents(subject string) []*Consent {
	out := all[Consent](s.layers(), tableConsents, indexID+"_prefix", subject)
	slices.SortFunc(out, func(a, b *Consent) int { return strings.Compare(a.ClientID, b.ClientID) })
	return out
}

// SigningKeys returns every signing key, oldest first.
func (s *Store) SigningKeys() []*SigningKey { return signingKeys(s.layers()) }

// User returns the user with the given name, or nil.
func (s *Store) User(name string) *User { return first[User](s.layers(), tableUsers, name) }

// Users returns every user ordered by name.
func (s *Store) Users() []*User { return all[User](s.layers(), tableUsers, indexID) }

// Revoked reports whether key ("jti:<id>" or "grant:<id>") is revoked. It is
// on the hot path of every ext_authz decision.
func (s *Store) Revoked(key string) bool {
	return first[Revocation](s.layers(), tableRevocations, key) != nil
}

// Revocation returns the revocation with the given key, or nil.
func (s *Store) Revocation(key string) *Revocation {
	return first[Revocation](s.layers(), tableRevocations, key)
}

// layers returns the newest durable state.
func (s *Store) layers() layers { return *s.view.Load() }
