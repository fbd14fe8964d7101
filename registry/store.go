package registry

// NOTE(skeleton): this file is a placeholder implementation of the public API
// with plain maps and no durability. The registry work replaces the internals
// with go-memdb, the write-ahead log and snapshots, keeping these signatures.

import (
	"context"
	"errors"
	"log/slog"
	"sync"
)

// ErrNotFound is returned by writes that need an existing record.
var ErrNotFound = errors.New("not found")

// ErrUnavailable is wrapped by write errors caused by the disk (full,
// read-only, failing): the write was not made and may be retried later.
var ErrUnavailable = errors.New("registry unavailable for writes")

// Options configures Open.
type Options struct {
	// Logger receives the store's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Store is the registry: an in-memory index made durable on disk.
type Store struct {
	mu    sync.RWMutex
	state *memState
}

type memState struct {
	clients   map[string]*Client
	codes     map[string]*AuthCode
	refresh   map[string]*RefreshToken
	consents  map[[2]string]*Consent
	keys      map[string]*SigningKey
	users     map[string]*User
	revokeds  map[string]*Revocation
}

// Open opens (creating if needed) the data directory dir, takes its lock and
// rehydrates the index from disk.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	return &Store{state: &memState{
		clients:  map[string]*Client{},
		codes:    map[string]*AuthCode{},
		refresh:  map[string]*RefreshToken{},
		consents: map[[2]string]*Consent{},
		keys:     map[string]*SigningKey{},
		users:    map[string]*User{},
		revokeds: map[string]*Revocation{},
	}}, nil
}

// Close flushes and closes the store and releases the directory lock.
func (s *Store) Close() error { return nil }

// Update runs fn in a write transaction. Its changes become visible and are
// durable on disk before Update returns nil; if fn returns an error nothing
// is written. fn may be called only once and must not block on I/O.
func (s *Store) Update(ctx context.Context, fn func(tx *Txn) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &Txn{s: s.state}
	return fn(tx)
}

// Txn is a write transaction. Reads through it see its own writes.
type Txn struct{ s *memState }

// Client returns the client with the given id, or nil.
func (t *Txn) Client(id string) *Client { return t.s.clients[id] }

// PutClient inserts or replaces a client.
func (t *Txn) PutClient(c *Client) error { t.s.clients[c.ID] = c; return nil }

// DeleteClient removes a client and everything issued to it.
func (t *Txn) DeleteClient(id string) error { delete(t.s.clients, id); return nil }

// AuthCode returns the authorization code with the given hash, or nil.
func (t *Txn) AuthCode(hash string) *AuthCode { return t.s.codes[hash] }

// PutAuthCode inserts or replaces an authorization code.
func (t *Txn) PutAuthCode(c *AuthCode) error { t.s.codes[c.Hash] = c; return nil }

// RefreshToken returns the refresh token with the given hash, or nil.
func (t *Txn) RefreshToken(hash string) *RefreshToken { return t.s.refresh[hash] }

// RefreshTokensByGrant returns every refresh token of a grant.
func (t *Txn) RefreshTokensByGrant(grantID string) []*RefreshToken {
	var out []*RefreshToken
	for _, r := range t.s.refresh {
		if r.GrantID == grantID {
			out = append(out, r)
		}
	}
	return out
}

// PutRefreshToken inserts or replaces a refresh token.
func (t *Txn) PutRefreshToken(r *RefreshToken) error { t.s.refresh[r.Hash] = r; return nil }

// PutConsent inserts or replaces a consent.
func (t *Txn) PutConsent(c *Consent) error {
	t.s.consents[[2]string{c.Subject, c.ClientID}] = c
	return nil
}

// DeleteConsent withdraws a consent.
func (t *Txn) DeleteConsent(subject, clientID string) error {
	delete(t.s.consents, [2]string{subject, clientID})
	return nil
}

// PutSigningKey inserts or replaces a signing key.
func (t *Txn) PutSigningKey(k *SigningKey) error { t.s.keys[k.ID] = k; return nil }

// PutUser inserts or replaces a user.
func (t *Txn) PutUser(u *User) error { t.s.users[u.Name] = u; return nil }

// PutRevocation records a revocation.
func (t *Txn) PutRevocation(r *Revocation) error { t.s.revokeds[r.Key] = r; return nil }

// Client returns the client with the given id, or nil.
func (s *Store) Client(id string) *Client {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.state.clients[id]
}

// Clients returns every client ordered by id.
func (s *Store) Clients() []*Client {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Client
	for _, c := range s.state.clients {
		out = append(out, c)
	}
	return out
}

// AuthCode returns the authorization code with the given hash, or nil.
func (s *Store) AuthCode(hash string) *AuthCode {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.state.codes[hash]
}

// RefreshToken returns the refresh token with the given hash, or nil.
func (s *Store) RefreshToken(hash string) *RefreshToken {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.state.refresh[hash]
}

// Consent returns the consent of subject for clientID, or nil.
func (s *Store) Consent(subject, clientID string) *Consent {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.state.consents[[2]string{subject, clientID}]
}

// SigningKeys returns every signing key, oldest first.
func (s *Store) SigningKeys() []*SigningKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*SigningKey
	for _, k := range s.state.keys {
		out = append(out, k)
	}
	return out
}

// User returns the user with the given name, or nil.
func (s *Store) User(name string) *User {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.state.users[name]
}

// Users returns every user ordered by name.
func (s *Store) Users() []*User {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*User
	for _, u := range s.state.users {
		out = append(out, u)
	}
	return out
}

// Revoked reports whether key ("jti:<id>" or "grant:<id>") is revoked.
func (s *Store) Revoked(key string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.state.revokeds[key]
	return ok
}
