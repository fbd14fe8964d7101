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
	tx   *memdb.Txn // the delta over base
	base *base
	log  *changeLog // nil: changes are not recorded (memdb may track them)
	done bool
}

// layers returns the Txn's view of the state.
func (t *Txn) layers() layers { return layers{base: t.base, tx: t.tx} }

var errTxnDone = errors.New("registry: transaction used after its Update returned")

// Client returns the client with the given id, or nil.
func (t *Txn) Client(id string) *Client { return first[Client](t.layers(), tableClients, id) }

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
		if err := t.deleteAll(table, indexClient, id); err != nil {
			return fmt.Errorf("deleting %s of client %q: %w", table, id, err)
		}
	}
	return nil
}

// AuthCode returns the authorization code with the given hash, or nil.
func (t *Txn) AuthCode(hash string) *AuthCode {
	return first[AuthCode](t.layers(), tableCodes, hash)
}

// PutAuthCode inserts or replaces an authorization code.
func (t *Txn) PutAuthCode(c *AuthCode) error {
	if c == nil || c.Hash == "" {
		return errors.New("putting authorization code: empty hash")
	}
	n := c.Copy()
	utc(&n.CreatedAt, &n.ExpiresAt, &n.UsedAt)
	return t.insert(tableCodes, hashFingerprint(c.Hash), n)
}

// DeleteAuthCode removes an authorization code. It returns ErrNotFound if
// there is no such code.
func (t *Txn) DeleteAuthCode(hash string) error {
	return t.delete(tableCodes, hashFingerprint(hash), &AuthCode{Hash: hash})
}

// RefreshToken returns the refresh token with the given hash, or nil.
func (t *Txn) RefreshToken(hash string) *RefreshToken {
	return first[RefreshToken](t.layers(), tableRefreshTokens, hash)
}

// RefreshTokensByGrant returns every refresh token of a grant.
func (t *Txn) RefreshTokensByGrant(grantID string) []*RefreshToken {
	return all[RefreshToken](t.layers(), tableRefreshTokens, indexGrantID, grantID)
}

// RefreshTokensByClient returns every refresh token issued to a client.
func (t *Txn) RefreshTokensByClient(clientID string) []*RefreshToken {
	return all[RefreshToken](t.layers(), tableRefreshTokens, indexClient, clientID)
}

// PutRefreshToken inserts or replaces a refresh token.
func (t *Txn) PutRefreshToken(r *RefreshToken) error {
	if r == nil || r.Hash == "" {
		return errors.New("putting refresh token: empty hash")
	}
	n := r.Copy()
	utc(&n.CreatedAt, &n.ExpiresAt, &n.RotatedAt, &n.RevokedAt)
	return t.insert(tableRefreshTokens, hashFingerprint(r.Hash), n)
}

// DeleteRefreshToken removes a refresh token. It returns ErrNotFound if
// there is no such token.
func (t *Txn) DeleteRefreshToken(hash string) error {
	return t.delete(tableRefreshTokens, hashFingerprint(hash), &RefreshToken{Hash: hash})
}

// Consent returns the consent of subject for clientID, or nil.
func (t *Txn) Consent(subject, clientID string) *Consent {
	return lookup[Consent](t.layers(), tableConsents, subject, clientID)
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
func (t *Txn) SigningKeys() []*SigningKey { return signingKeys(t.layers()) }

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
func (t *Txn) User(name string) *User { return first[User](t.layers(), tableUsers, name) }

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
	return first[Revocation](t.layers(), tableRevocations, key) != nil
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
	var before any
	if t.log != nil {
		before = t.layers().current(table, obj)
	}
	if err := t.layers().put(table, obj); err != nil {
		return fmt.Errorf("putting %s %q: %w", table, key, err)
	}
	t.log.add(table, before, obj)
	return nil
}

// delete removes the record whose primary key is that of keyObj.
func (t *Txn) delete(table, key string, keyObj any) error {
	if t.done {
		return errTxnDone
	}
	cur := t.layers().current(table, keyObj)
	if cur == nil {
		return fmt.Errorf("deleting %s %q: %w", table, key, ErrNotFound)
	}
	if err := t.deleteObj(table, cur); err != nil {
		return fmt.Errorf("deleting %s %q: %w", table, key, err)
	}
	return nil
}

// deleteObj removes obj, a record stored in table.
func (t *Txn) deleteObj(table string, obj any) error {
	if t.done {
		return errTxnDone
	}
	if err := t.layers().remove(table, obj); err != nil {
		return err
	}
	t.log.add(table, obj, nil)
	return nil
}

// deleteAll removes the records of table found in index by key, as memdb's
// DeleteAll does.
func (t *Txn) deleteAll(table, index, key string) error {
	if t.done {
		return errTxnDone
	}
	for _, obj := range t.layers().list(table, index, key) {
		if err := t.deleteObj(table, obj); err != nil {
			return err
		}
	}
	return nil
}

// changeLog records the changes made through the Txns of one write batch,
// in order, so that the changes of one Update can be encoded on their own
// and undone when its function fails.
type changeLog struct {
	changes memdb.Changes
}

// add records a change; a nil log records nothing.
func (l *changeLog) add(table string, before, after any) {
	if l != nil {
		l.changes = append(l.changes, memdb.Change{Table: table, Before: before, After: after})
	}
}

// undo reverts the changes recorded from start on, newest first, and forgets
// them.
func (l *changeLog) undo(st layers, start int) error {
	for i := len(l.changes) - 1; i >= start; i-- {
		ch := l.changes[i]
		var err error
		if ch.Before != nil {
			err = st.put(ch.Table, ch.Before)
		} else {
			err = st.remove(ch.Table, ch.After)
		}
		if err != nil {
			return fmt.Errorf("undoing a %s change: %w", ch.Table, err)
		}
	}
	clear(l.changes[start:])
	l.changes = l.changes[:start]
	return nil
}

// net returns the changes recorded from start on with those to one record
// merged, as memdb's Txn.Changes does: each record once, where it was last
// changed, with its first Before and last After; a record created and then
// deleted is left out.
func (l *changeLog) net(start int) memdb.Changes {
	chs := l.changes[start:]
	if len(chs) <= 1 {
		return chs
	}
	type info struct {
		firstBefore any
		last        int
	}
	keys := make([]string, len(chs))
	seen := make(map[string]info, len(chs))
	for i, ch := range chs {
		obj := ch.After
		if obj == nil {
			obj = ch.Before
		}
		keys[i] = ch.Table + "\x00" + primaryKey(ch.Table, obj)
		in, ok := seen[keys[i]]
		if !ok {
			in.firstBefore = ch.Before
		}
		in.last = i
		seen[keys[i]] = in
	}
	if len(seen) == len(chs) {
		return chs
	}
	out := make(memdb.Changes, 0, len(seen))
	for i, ch := range chs {
		in := seen[keys[i]]
		if in.last != i {
			continue
		}
		ch.Before = in.firstBefore
		if ch.Before == nil && ch.After == nil {
			continue
		}
		out = append(out, ch)
	}
	return out
}

// primaryKey returns the primary index key of obj, a record of table.
func primaryKey(table string, obj any) string {
	_, key, err := idIndexers[table].FromObject(obj)
	if err != nil {
		panic(fmt.Sprintf("registry: primary key of %s: %v", table, err))
	}
	return string(key)
}

// idIndexers holds the primary key indexer of every table.
var idIndexers = func() map[string]keyIndexer {
	m := map[string]keyIndexer{}
	for name, t := range schema().Tables {
		m[name] = t.Indexes[indexID].Indexer.(keyIndexer)
	}
	return m
}()

// keyIndexer is what a primary index's indexer does.
type keyIndexer interface {
	memdb.SingleIndexer
	memdb.Indexer
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

// first returns the record of table whose primary key is key, or nil; the
// table's primary index must key records by that string as it is. It is the
// hot path of Store.Client and Store.Revoked.
func first[T any](st layers, table, key string) *T {
	switch o := st.deltaKey(table, key).(type) {
	case *T:
		return o
	case *tombstone:
		return nil
	}
	o, _ := st.base.get(table, key).(*T)
	return o
}

// lookup returns the record of table whose primary key is given by args, or
// nil.
func lookup[T any](st layers, table string, args ...any) *T {
	o, _ := st.lookup(table, args...).(*T)
	return o
}

// all returns the records of table found in index by args, in primary key
// order (see layers.list).
func all[T any](st layers, table, index string, args ...any) []*T {
	objs := st.list(table, index, args...)
	if len(objs) == 0 {
		return nil
	}
	out := make([]*T, len(objs))
	for i, o := range objs {
		out[i] = o.(*T)
	}
	return out
}

func signingKeys(st layers) []*SigningKey {
	keys := all[SigningKey](st, tableSigningKeys, indexID)
	slices.SortStableFunc(keys, func(a, b *SigningKey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return keys
}
