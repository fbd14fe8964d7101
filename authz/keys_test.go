package authz

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-authz/mcp-authz/registry"
)

// jwksKIDs parses a JWKS document and returns its kids, checking that every
// key is a public P-256 signing key.
func jwksKIDs(t *testing.T, doc []byte) []string {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatalf("JWKS %s: %v", doc, err)
	}
	var kids []string
	for _, k := range set.Keys {
		for name, want := range map[string]any{
			"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
		} {
			if k[name] != want {
				t.Errorf("key %v: %s = %v, want %v", k["kid"], name, k[name], want)
			}
		}
		if _, ok := k["d"]; ok {
			t.Errorf("key %v publishes its private part", k["kid"])
		}
		if k["x"] == nil || k["y"] == nil {
			t.Errorf("key %v lacks x or y", k["kid"])
		}
		kids = append(kids, k["kid"].(string))
	}
	slices.Sort(kids)
	return kids
}

func TestNewKeysCreatesOnceAndReloads(t *testing.T) {
	e := newTestEnv(t)
	kid := e.keys.SigningKeyID()
	if len(kid) != kidLen {
		t.Fatalf("kid %q: want %d characters", kid, kidLen)
	}
	stored := e.store.SigningKeys()
	if len(stored) != 1 || stored[0].ID != kid || stored[0].Algorithm != "ES256" {
		t.Fatalf("stored keys %+v: want one ES256 key %q", stored, kid)
	}

	again, err := NewKeys(t.Context(), e.store, discard())
	if err != nil {
		t.Fatal(err)
	}
	if got := again.SigningKeyID(); got != kid {
		t.Errorf("second NewKeys signs with %q, want the stored %q", got, kid)
	}
	if n := len(e.store.SigningKeys()); n != 1 {
		t.Errorf("second NewKeys left %d keys, want 1", n)
	}
	doc, err := e.keys.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{kid}, jwksKIDs(t, doc)); diff != "" {
		t.Errorf("JWKS kids (-want +got):\n%s", diff)
	}
}

func TestNewKeysRefusesDamagedKey(t *testing.T) {
	tests := []struct {
		name string
		key  registry.SigningKey
	}{
		{"garbage DER", registry.SigningKey{ID: "k1", Algorithm: "ES256",
			PrivateKey: []byte("nope")}},
		{"unknown algorithm", registry.SigningKey{ID: "k2", Algorithm: "RS256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, err := registry.Open(t.Context(), t.TempDir(), registry.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			k := tt.key
			if err := store.Update(t.Context(), func(tx *registry.Txn) error {
				return tx.PutSigningKey(&k)
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := NewKeys(t.Context(), store, discard()); err == nil {
				t.Error("NewKeys accepted a damaged key")
			}
		})
	}
}

// TestReloadSkipsDamagedKey shows that a damaged key appearing in the
// registry after start is left out while the good keys keep working.
func TestReloadSkipsDamagedKey(t *testing.T) {
	e := newTestEnv(t)
	kid := e.keys.SigningKeyID()
	if err := e.store.Update(t.Context(), func(tx *registry.Txn) error {
		return tx.PutSigningKey(&registry.SigningKey{ID: "bad", Algorithm: "ES256",
			PrivateKey: []byte("junk"), CreatedAt: e.clock.now()})
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.keys.Reload(); err == nil {
		t.Error("Reload did not report the damaged key")
	}
	if got := e.keys.SigningKeyID(); got != kid {
		t.Errorf("signing with %q, want %q", got, kid)
	}
	if err := e.keys.Rotate(t.Context(), time.Hour); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	doc, err := e.keys.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sorted(kid, e.keys.SigningKeyID()), jwksKIDs(t, doc)); diff != "" {
		t.Errorf("JWKS kids (-want +got):\n%s", diff)
	}
}

func TestRotateOverlap(t *testing.T) {
	e := newTestEnv(t)
	oldKID := e.keys.SigningKeyID()
	oldTok, _ := e.mint(t, nil)

	if err := e.keys.Rotate(t.Context(), 10*time.Minute); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	newKID := e.keys.SigningKeyID()
	if newKID == oldKID {
		t.Fatal("Rotate kept the signing key")
	}
	newTok, _ := e.mint(t, nil)

	steps := []struct {
		name      string
		advance   time.Duration
		wantKIDs  []string
		oldReason Reason
	}{
		{"during overlap", 0, sorted(oldKID, newKID), ReasonOK},
		{"just before retirement", 10*time.Minute - time.Second, sorted(oldKID, newKID),
			ReasonOK},
		{"after retirement", time.Second, []string{newKID}, ReasonBadSignature},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			e.clock.add(st.advance)
			doc, err := e.keys.JWKS()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(st.wantKIDs, jwksKIDs(t, doc)); diff != "" {
				t.Errorf("JWKS kids (-want +got):\n%s", diff)
			}
			if _, r, err := e.tokens.Verify(oldTok, e.clock.now()); r != st.oldReason {
				t.Errorf("old token: %q (%v), want %q", r, err, st.oldReason)
			}
			if _, r, err := e.tokens.Verify(newTok, e.clock.now()); r != ReasonOK {
				t.Errorf("new token: %q (%v), want ok", r, err)
			}
		})
	}

	// A restart after the rotation signs with the new key.
	again, err := NewKeys(t.Context(), e.store, discard())
	if err != nil {
		t.Fatal(err)
	}
	if got := again.SigningKeyID(); got != newKID {
		t.Errorf("after restart signing with %q, want %q", got, newKID)
	}
}

// TestKeysSeeRotationByAnotherInstance shows that a kid unknown to one Keys
// (rotated through another Keys over the same registry) is found on demand.
func TestKeysSeeRotationByAnotherInstance(t *testing.T) {
	e := newTestEnv(t)
	other, err := NewKeys(t.Context(), e.store, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Rotate(t.Context(), time.Hour); err != nil {
		t.Fatal(err)
	}
	tok, _, err := NewTokens(e.cfg, other).Mint(AccessClaims{Subject: "a", ClientID: "c",
		Audience: testResource, IssuedAt: e.clock.now()})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.add(2 * reloadInterval)
	if _, r, err := e.tokens.Verify(tok, e.clock.now()); r != ReasonOK {
		t.Errorf("token of the rotated key: %q (%v), want ok", r, err)
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}
