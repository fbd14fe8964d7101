package authz

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/registry"
)

const (
	testIssuer   = "http://localhost:9000"
	testResource = "http://localhost:8080/mcp"
	testRoot     = "https://mcp.example.com"
)

// testClock is a settable clock shared by Keys and the tests.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.set(time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC))
	return c
}

func (c *testClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *testClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// testEnv is a real registry with keys, tokens and a decider over it.
type testEnv struct {
	cfg     Config
	clock   *testClock
	dir     string // the registry's data directory
	store   *registry.Store
	keys    *Keys
	tokens  *Tokens
	decider *Decider
}

func testConfig() Config {
	return Config{
		Issuer: testIssuer,
		Resources: []Resource{
			{URL: testResource, Scopes: []string{"mcp:tools", "mcp:admin"},
				RequiredScopes: []string{"mcp:tools"}},
			{URL: testRoot + "/"},
			{URL: "https://mcp.example.com/team/a"},
		},
	}
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	return newTestEnvConfig(t, testConfig())
}

func newTestEnvConfig(t testing.TB, cfg Config) *testEnv {
	t.Helper()
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	e := &testEnv{cfg: cfg, clock: newTestClock(), dir: t.TempDir()}
	e.open(t)
	t.Cleanup(func() { e.store.Close() })
	return e
}

// open opens the registry and builds the keys, tokens and decider on it. The
// registry is closed at the end of the test.
func (e *testEnv) open(t testing.TB) {
	t.Helper()
	logger := discard()
	store, err := registry.Open(t.Context(), e.dir, registry.Options{Logger: logger})
	if err != nil {
		t.Fatalf("opening registry: %v", err)
	}
	keys, err := NewKeys(t.Context(), store, logger)
	if err != nil {
		t.Fatalf("NewKeys: %v", err)
	}
	keys.now = e.clock.now
	e.store, e.keys, e.tokens = store, keys, NewTokens(e.cfg, keys)
	e.decider = NewDecider(e.cfg, e.tokens, store, logger)
	e.decider.now = e.clock.now
}

// restart snapshots and closes the registry and opens it again, as a
// restarted process would, with new keys, tokens and decider on it.
func (e *testEnv) restart(t testing.TB) {
	t.Helper()
	if err := e.store.Snapshot(t.Context()); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if err := e.store.Close(); err != nil {
		t.Fatalf("closing registry: %v", err)
	}
	e.open(t)
}

// putClient registers a client in the registry.
func (e *testEnv) putClient(t testing.TB, id string, revoked bool) {
	t.Helper()
	c := &registry.Client{ID: id, TokenEndpointAuthMethod: "none", CreatedAt: e.clock.now()}
	if revoked {
		c.RevokedAt = e.clock.now()
	}
	if err := e.store.Update(t.Context(), func(tx *registry.Txn) error {
		return tx.PutClient(c)
	}); err != nil {
		t.Fatalf("putting client %q: %v", id, err)
	}
}

// revoke records a revocation ("jti:<id>" or "grant:<id>").
func (e *testEnv) revoke(t testing.TB, key string) {
	t.Helper()
	r := &registry.Revocation{Key: key, CreatedAt: e.clock.now(),
		ExpiresAt: e.clock.now().Add(2 * time.Hour)}
	if err := e.store.Update(t.Context(), func(tx *registry.Txn) error {
		return tx.PutRevocation(r)
	}); err != nil {
		t.Fatalf("revoking %q: %v", key, err)
	}
}

// mint mints a token for the default client and resource, applying edit.
func (e *testEnv) mint(t testing.TB, edit func(*AccessClaims)) (string, AccessClaims) {
	t.Helper()
	c := AccessClaims{Subject: "alice", ClientID: "client-1", Audience: testResource,
		Scope: "mcp:tools", GrantID: "grant-1", IssuedAt: e.clock.now()}
	if edit != nil {
		edit(&c)
	}
	tok, c, err := e.tokens.Mint(c)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return tok, c
}

// signer returns the current signing key.
func (e *testEnv) signer(t testing.TB) *signingKey {
	t.Helper()
	s := e.keys.set.Load()
	if s.signer == nil {
		t.Fatal("no signing key")
	}
	return s.signer
}

// validClaims are the JSON claims of a token e would accept.
func (e *testEnv) validClaims() map[string]any {
	now := e.clock.now().Unix()
	return map[string]any{
		"iss": testIssuer, "sub": "alice", "aud": testResource, "client_id": "client-1",
		"scope": "mcp:tools", "jti": "jti-crafted", "grant": "grant-1",
		"iat": now, "exp": now + 3600,
	}
}

func otherKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
