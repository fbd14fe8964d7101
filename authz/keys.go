package authz

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/mcp-authz/mcp-authz/registry"
)

// algES256 is the only signing algorithm: ECDSA on P-256 with SHA-256.
const algES256 = "ES256"

// kidLen is the length of a key id: the first 16 characters (96 bits) of the
// key's RFC 7638 SHA-256 thumbprint, base64url-encoded.
const kidLen = 16

// reloadInterval bounds how often an unknown kid makes Keys re-read the
// registry (another instance may have rotated).
const reloadInterval = time.Second

// Keys manages the token signing keys kept in the registry. Readers (token
// verification, JWKS) see an immutable key set through an atomic pointer and
// never take a lock; writers (Rotate, Reload) build a new set and swap it in.
type Keys struct {
	store  *registry.Store
	logger *slog.Logger
	now    func() time.Time

	mu         sync.Mutex // serialises writers
	set        atomic.Pointer[keySet]
	lastReload atomic.Int64 // unix nanoseconds of the last miss-driven reload
}

// keySet is an immutable snapshot of the usable signing keys.
type keySet struct {
	signer *signingKey            // newest key not retired; nil if none
	byKID  map[string]*signingKey // every key published until its RetireAt
	jwks   []byte                 // the JWKS document of byKID
	// expires is the earliest RetireAt among published keys, after which
	// the set must be rebuilt; zero when none retires.
	expires time.Time
}

// signingKey is one parsed registry key.
type signingKey struct {
	id       string
	priv     *ecdsa.PrivateKey
	pub      *ecdsa.PublicKey
	created  time.Time
	retireAt time.Time
}

// NewKeys loads the signing keys from store, creating an ES256 key on first
// start (or when every stored key has been retired). A stored key that does
// not parse is an error: damaged state is never ignored.
func NewKeys(ctx context.Context, store *registry.Store, logger *slog.Logger) (*Keys, error) {
	if logger == nil {
		logger = slog.Default()
	}
	k := &Keys{store: store, logger: logger.With("component", "keys"), now: time.Now}

	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(true); err != nil {
		return nil, err
	}
	if k.set.Load().signer != nil {
		return k, nil
	}
	nk, err := newSigningKey(k.now())
	if err != nil {
		return nil, err
	}
	if err := k.store.Update(ctx, func(tx *registry.Txn) error {
		return tx.PutSigningKey(nk)
	}); err != nil {
		return nil, fmt.Errorf("storing signing key %q: %w", nk.ID, err)
	}
	k.logger.Info("created signing key", "kid", nk.ID)
	if err := k.reloadLocked(true); err != nil {
		return nil, err
	}
	return k, nil
}

// JWKS returns the public JSON Web Key Set document: every key not past its
// RetireAt. The slice is shared; callers must not modify it.
func (k *Keys) JWKS() ([]byte, error) {
	s := k.current()
	if s.jwks == nil {
		return nil, errors.New("jwks unavailable")
	}
	return s.jwks, nil
}

// SigningKeyID returns the id of the key that signs new tokens.
func (k *Keys) SigningKeyID() string {
	if s := k.current(); s.signer != nil {
		return s.signer.id
	}
	return ""
}

// Rotate creates a new signing key and retires every older one after
// overlap, during which the old keys stay published and keep verifying. The
// overlap should be at least the access token lifetime plus the leeway, or
// tokens signed just before the rotation stop verifying early.
func (k *Keys) Rotate(ctx context.Context, overlap time.Duration) error {
	if overlap < 0 {
		return fmt.Errorf("rotating signing key: negative overlap %v", overlap)
	}
	k.mu.Lock()
	defer k.mu.Unlock()

	now := k.now()
	retire := now.Add(overlap)
	nk, err := newSigningKey(now)
	if err != nil {
		return err
	}
	old := k.store.SigningKeys()
	if err := k.store.Update(ctx, func(tx *registry.Txn) error {
		for _, o := range old {
			if !o.RetireAt.IsZero() && !o.RetireAt.After(retire) {
				continue
			}
			c := *o // records from the store are shared: copy before changing
			c.RetireAt = retire
			if err := tx.PutSigningKey(&c); err != nil {
				return fmt.Errorf("retiring signing key %q: %w", o.ID, err)
			}
		}
		return tx.PutSigningKey(nk)
	}); err != nil {
		return fmt.Errorf("rotating to signing key %q: %w", nk.ID, err)
	}
	k.logger.Info("rotated signing key", "kid", nk.ID, "old_retire_at", retire)
	_ = k.reloadLocked(false) // a damaged older key is logged there
	return nil
}

// Reload rebuilds the key set from the registry. It reads memory only. A
// stored key that does not parse is left out, logged and reported; the
// other keys are used.
func (k *Keys) Reload() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reloadLocked(false)
}

// current returns the key set, rebuilding it first when a published key has
// reached its RetireAt.
func (k *Keys) current() *keySet {
	s := k.set.Load()
	if s.expires.IsZero() || k.now().Before(s.expires) {
		return s
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if s = k.set.Load(); !s.expires.IsZero() && !k.now().Before(s.expires) {
		_ = k.reloadLocked(false) // logged there
	}
	return k.set.Load()
}

// lookup returns the published key with the given id. On a miss it re-reads
// the registry at most once per reloadInterval, so keys rotated by another
// instance sharing the registry are found.
func (k *Keys) lookup(kid string) *signingKey {
	if sk := k.current().byKID[kid]; sk != nil {
		return sk
	}
	now := k.now().UnixNano()
	last := k.lastReload.Load()
	if now-last < int64(reloadInterval) || !k.lastReload.CompareAndSwap(last, now) {
		return nil
	}
	if err := k.Reload(); err != nil {
		k.logger.Warn("reloading signing keys", "err", err)
		return nil
	}
	return k.set.Load().byKID[kid]
}

// reloadLocked rebuilds the key set. When strict, a key that does not parse
// fails the reload; otherwise it is logged and left out.
func (k *Keys) reloadLocked(strict bool) error {
	s, bad, err := buildKeySet(k.store.SigningKeys(), k.now())
	if err != nil {
		k.logger.Error("building key set", "err", err)
		return err
	}
	if strict && bad != nil {
		return bad
	}
	if bad != nil {
		k.logger.Error("skipping unusable signing keys", "err", bad)
	}
	k.set.Store(s)
	return bad
}

// buildKeySet parses the registry's keys and keeps those not past RetireAt.
// Keys that do not parse are left out and reported in bad.
func buildKeySet(recs []*registry.SigningKey, now time.Time) (s *keySet, bad, err error) {
	s = &keySet{byKID: map[string]*signingKey{}}
	set := jwk.NewSet()
	var bads []error
	recs = slices.Clone(recs)
	slices.SortFunc(recs, func(a, b *registry.SigningKey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	for _, r := range recs {
		if !r.RetireAt.IsZero() && !now.Before(r.RetireAt) {
			continue
		}
		sk, err := parseSigningKey(r)
		if err != nil {
			bads = append(bads, err)
			continue
		}
		pk, err := publicJWK(sk)
		if err == nil {
			err = set.AddKey(pk)
		}
		if err != nil {
			bads = append(bads, fmt.Errorf("publishing signing key %q: %w", sk.id, err))
			continue
		}
		s.byKID[sk.id] = sk
		if sk.retireAt.IsZero() || s.signer == nil || !s.signer.retireAt.IsZero() {
			// Prefer the newest key without a retirement date.
			s.signer = sk
		}
		if !sk.retireAt.IsZero() && (s.expires.IsZero() || sk.retireAt.Before(s.expires)) {
			s.expires = sk.retireAt
		}
	}
	doc, err := json.Marshal(set)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding jwks: %w", err)
	}
	s.jwks = doc
	return s, errors.Join(bads...), nil
}

func parseSigningKey(r *registry.SigningKey) (*signingKey, error) {
	if r.Algorithm != algES256 {
		return nil, fmt.Errorf("signing key %q: unsupported algorithm %q", r.ID, r.Algorithm)
	}
	raw, err := x509.ParsePKCS8PrivateKey(r.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("signing key %q: %w", r.ID, err)
	}
	priv, ok := raw.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("signing key %q: not a P-256 ECDSA key", r.ID)
	}
	if r.ID == "" {
		return nil, fmt.Errorf("signing key created %v: empty kid", r.CreatedAt)
	}
	return &signingKey{
		id: r.ID, priv: priv, pub: &priv.PublicKey,
		created: r.CreatedAt, retireAt: r.RetireAt,
	}, nil
}

func publicJWK(sk *signingKey) (jwk.Key, error) {
	pk, err := jwk.FromRaw(sk.pub)
	if err != nil {
		return nil, fmt.Errorf("signing key %q: %w", sk.id, err)
	}
	for name, v := range map[string]any{
		jwk.KeyIDKey:     sk.id,
		jwk.AlgorithmKey: jwa.ES256,
		jwk.KeyUsageKey:  jwk.ForSignature,
	} {
		if err := pk.Set(name, v); err != nil {
			return nil, fmt.Errorf("signing key %q: setting %s: %w", sk.id, name, err)
		}
	}
	return pk, nil
}

// newSigningKey generates a P-256 key whose kid is a truncated RFC 7638
// thumbprint of its public key.
func newSigningKey(now time.Time) (*registry.SigningKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding signing key: %w", err)
	}
	pk, err := jwk.FromRaw(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encoding signing key: %w", err)
	}
	tp, err := pk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing key thumbprint: %w", err)
	}
	return &registry.SigningKey{
		ID:         base64.RawURLEncoding.EncodeToString(tp)[:kidLen],
		Algorithm:  algES256,
		PrivateKey: der,
		CreatedAt:  now,
	}, nil
}

// published reports whether the key kid is still published (and so still
// verifies tokens).
func (k *Keys) published(kid string) bool {
	return k.current().byKID[kid] != nil
}
