package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Txn is a write transaction. Reads through it see its own writes and those
// of earlier transactions, including ones whose Update has not returned yet.
// Records returned by a Txn are shared: copy them before changing them. Put
// methods store a copy of their argument (with times converted to UTC), so
// the caller keeps ownership.
type Txn struct {
	tx   *memdb.Txn
	done bool
}

var errTxnDone = errors.New("registry: transaction used after its Update returned")

// Client returns the client with the given id, or nil.
func (t *Txn) Client(id string) *Client { return first[Client](t.tx, tableClients, id) }

// PutClient inserts or replaces a client.
func (t *Txn) PutClient(c *Client) error {
	if c == nil || c.ID == "" {
		return errors.New("putting client: empty client id")
	}
	n := c.Copy()
	utc(&n.SecretExpiresAt, &n.CreatedAt, &n.UpdatedAt, &n.RevokedAt)
	return t.insert(tableClients, c.ID, n)
}

// DeleteClient removes a client and everything issued to it: its
// authorization codes, refresh tokens and consents. It returns ErrNotFound if
// there is no such client.
func (t *Txn) DeleteClient(id string) error {
	if err := t.delete(tableClients, id, &Client{ID: id}); err != nil {
		return err
	}
	for _, table := range []string{tableCodes, tableRefreshTokens, tableConsents} {
		if _, err := t.tx.DeleteAll(table, indexClient, id); err != nil {
			return fmt.Errorf("deleting %s of client %q: %w", table, id, err)
		}
	}
	return nil
}

// AuthCode returns the authorization code with the given hash, or nil.
func (t *Txn) AuthCode(hash string) *AuthCode { return first[AuthCode](t.tx, tableCodes, hash) }

// PutAuthCode inserts or replaces an authorization code.
func (t *Txn) PutAuthCode(c *AuthCode) error {
	if c == nil || c.Hash == "" {
		return errors.New("putting authorization code: empty hash")
	}
	n := c.Copy()
	utc(&n.CreatedAt, &n.ExpiresAt, &n.UsedAt)
	return t.insert(tableCodes, fingerprint(c.Hash), n)
}

// DeleteAuthCode removes an authorization code. It returns ErrNotFound if
// there is no such code.
func (t *Txn) DeleteAuthCode(hash string) error {
	return t.delete(tableCodes, fingerprint(hash), &AuthCode{Hash: hash})
}

// RefreshToken returns the refresh token with the given hash, or nil.
func (t *Txn) RefreshToken(hash string) *RefreshToken {
	return first[RefreshToken](t.tx, tableRefreshTokens, hash)
}

// RefreshTokensByGrant returns every refresh token of a grant.
func (t *Txn) RefreshTokensByGrant(grantID string) []*RefreshToken {
	return all[RefreshToken](t.tx, tableRefreshTokens, indexGrantID, grantID)
}

// RefreshTokensByClient returns every refresh token issued to a client.
func (t *Txn) RefreshTokensByClient(clientID string) []*RefreshToken {
	return all[RefreshToken](t.tx, tableRefreshTokens, indexClient, clientID)
}

// PutRefreshToken inserts or replaces a refresh token.
func (t *Txn) PutRefreshToken(r *RefreshToken) error {
	if r == nil || r.Hash == "" {
		return errors.New("putting refresh token: empty hash")
	}
	n := r.Copy()
	utc(&n.CreatedAt, &n.ExpiresAt, &n.RotatedAt, &n.RevokedAt)
	return t.insert(tableRefreshTokens, fingerprint(r.Hash), n)
}

// DeleteRefreshToken removes a refresh token. It returns ErrNotFound if
// there is no such token.
func (t *Txn) DeleteRefreshToken(hash string) error {
	return t.delete(tableRefreshTokens, fingerprint(hash), &RefreshToken{Hash: hash})
}

// Consent returns the consent of subject for clientID, or nil.
func (t *Txn) Consent(subject, clientID string) *Consent {
	return firstIn[Consent](t.tx, tableConsents, indexID, subject, clientID)
}

// PutConsent inserts or replaces a consent.
func (t *Txn) PutConsent(c *Consent) error {
	if c == nil || c.Subject == "" || c.ClientID == "" {
		return errors.New("putting consent: empty subject or client id")
	}
	n := c.Copy()
	utc(&n.GrantedAt)
	return t.insert(tableConsents, c.Subject+" "+c.ClientID, n)
}

// DeleteConsent withdraws a consent. It returns ErrNotFound if there is no
// such consent.
func (t *Txn) DeleteConsent(subject, clientID string) error {
	key := &Consent{Subject: subject, ClientID: clientID}
	return t.delete(tableConsents, subject+" "+clientID, key)
}

// SigningKeys returns every signing key, oldest first.
func (t *Txn) SigningKeys() []*SigningKey { return signingKeys(t.tx) }

// PutSigningKey inserts or replaces a signing key.
func (t *Txn) PutSigningKey(k *SigningKey) error {
	if k == nil || k.ID == "" {
		return errors.New("putting signing key: empty key id")
	}
	n := k.Copy()
	utc(&n.CreatedAt, &n.RetireAt)
	return t.insert(tableSigningKeys, k.ID, n)
}

// DeleteSigningKey removes a signing key. It returns ErrNotFound if there is
// no such key.
func (t *Txn) DeleteSigningKey(id string) error {
	return t.delete(tableSigningKeys, id, &SigningKey{ID: id})
}

// User returns the user with the given name, or nil.
func (t *Txn) User(name string) *User { return first[User](t.tx, tableUsers, name) }

// PutUser inserts or replaces a user.
func (t *Txn) PutUser(u *User) error {
	if u == nil || u.Name == "" {
		return errors.New("putting user: empty name")
	}
	n := u.Copy()
	utc(&n.CreatedAt)
	return t.insert(tableUsers, u.Name, n)
}

// DeleteUser removes a user. It returns ErrNotFound if there is no such user.
func (t *Txn) DeleteUser(name string) error {
	return t.delete(tableUsers, name, &User{Name: name})
}

// PutRevocation records a revocation.
func (t *Txn) PutRevocation(r *Revocation) error {
	if r == nil || r.Key == "" {
		return errors.New("putting revocation: empty key")
	}
	n := r.Copy()
	utc(&n.ExpiresAt, &n.CreatedAt)
	return t.insert(tableRevocations, r.Key, n)
}

// DeleteRevocation removes a revocation entry. It returns ErrNotFound if
// there is no such entry.
func (t *Txn) DeleteRevocation(key string) error {
	return t.delete(tableRevocations, key, &Revocation{Key: key})
}

// Revoked reports whether key ("jti:<id>" or "grant:<id>") is revoked.
func (t *Txn) Revoked(key string) bool {
	return first[Revocation](t.tx, tableRevocations, key) != nil
}

// utc converts times to UTC and drops their monotonic clock readings, so that
// a record reads the same from memory, the log and a snapshot.
func utc(ts ...*time.Time) {
	for _, t := range ts {
		*t = t.UTC()
	}
}

// insert stores obj, which the Txn owns. key names the record in errors
// (hashes of secrets are given as fingerprints).
func (t *Txn) insert(table, key string, obj any) error {
	if t.done {
		return errTxnDone
	}
	if err := t.tx.Insert(table, obj); err != nil {
		return fmt.Errorf("putting %s %q: %w", table, key, err)
	}
	return nil
}

// delete removes the record whose primary key is that of keyObj.
func (t *Txn) delete(table, key string, keyObj any) error {
	if t.done {
		return errTxnDone
	}
	err := t.tx.Delete(table, keyObj)
	if errors.Is(err, memdb.ErrNotFound) {
		return fmt.Errorf("deleting %s %q: %w", table, key, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("deleting %s %q: %w", table, key, err)
	}
	return nil
}

// keyArg passes a key to memdb as a pointer, which fits in an interface
// without an allocation (a string does not); pooled with its one-element
// argument list, a lookup allocates only what memdb itself does.
type keyArg struct {
	key  string
	args [1]any
}

var keyArgs = sync.Pool{New: func() any {
	k := &keyArg{}
	k.args[0] = &k.key
	return k
}}

// first returns the record of table whose primary key is key, or nil. It is
// the hot path of Store.Client and Store.Revoked.
func first[T any](tx *memdb.Txn, table, key string) *T {
	k := keyArgs.Get().(*keyArg)
	k.key = key
	raw, err := tx.First(table, indexID, k.args[:]...)
	k.key = ""
	keyArgs.Put(k)
	if err != nil {
		panic(fmt.Sprintf("registry: looking up %s: %v", table, err))
	}
	if raw == nil {
		return nil
	}
	return raw.(*T)
}

func firstIn[T any](tx *memdb.Txn, table, index string, args ...any) *T {
	raw, err := tx.First(table, index, args...)
	if err != nil {
		// Only a schema mismatch fails a lookup: a programming error.
		panic(fmt.Sprintf("registry: looking up %s.%s: %v", table, index, err))
	}
	if raw == nil {
		return nil
	}
	return raw.(*T)
}

// all returns the records of table found in index by args, in index order.
func all[T any](tx *memdb.Txn, table, index string, args ...any) []*T {
	it, err := tx.Get(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("registry: listing %s.%s: %v", table, index, err))
	}
	var out []*T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*T))
	}
	return out
}

func signingKeys(tx *memdb.Txn) []*SigningKey {
	keys := all[SigningKey](tx, tableSigningKeys, indexID)
	slices.SortStableFunc(keys, func(a, b *SigningKey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return keys
}
