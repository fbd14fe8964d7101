package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// openTest opens a store in a fresh directory and closes it at the end of the
// test.
func openTest(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	return openDir(t, dir, opts), dir
}

func openDir(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testLogger logs to the test's output, shown when it fails or with -v.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func update(t testing.TB, s *Store, fn func(tx *Txn) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// putClients puts clients prefix0 to prefix<n-1>, one Update each.
func putClients(t testing.TB, s *Store, prefix string, n int) {
	t.Helper()
	for i := range n {
		update(t, s, func(tx *Txn) error { return tx.PutClient(testClient(fmt.Sprint(prefix, i))) })
	}
}

// survivesReopen closes s and opens dir again with opts, checking that the
// state is the same, and returns the new store.
func survivesReopen(t *testing.T, s *Store, dir string, opts Options) *Store {
	t.Helper()
	want := stateOf(s)
	s = reopen(t, s, dir, opts)
	if diff := cmp.Diff(want, stateOf(s)); diff != "" {
		t.Errorf("state after an ordinary start (-want +got):\n%s", diff)
	}
	return s
}

func testClient(id string) *Client {
	return &Client{
		ID:                      id,
		SecretHash:              "secret-hash-" + id,
		RedirectURIs:            []string{"https://app.example/cb", "http://127.0.0.1/cb"},
		TokenEndpointAuthMethod: "client_secret_post",
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		Name:                    "App " + id,
		Contacts:                []string{"ops@app.example"},
		RegistrationTokenHash:   "rt-hash-" + id,
		CreatedAt:               t0,
	}
}

func testRefresh(hash, grant, client string) *RefreshToken {
	return &RefreshToken{
		Hash: hash, GrantID: grant, ClientID: client, Subject: "alice",
		Scope: "mcp", Resource: "https://mcp.example/mcp",
		CreatedAt: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour),
	}
}

// fixture is one of every record kind, written by putAll.
type fixture struct {
	clients  []*Client
	codes    []*AuthCode
	refresh  []*RefreshToken
	consents []*Consent
	keys     []*SigningKey
	users    []*User
	revs     []*Revocation
}

func testFixture() fixture {
	return fixture{
		clients: []*Client{testClient("c2"), testClient("c1"), testClient("c3")},
		codes: []*AuthCode{{
			Hash: "code-1", ClientID: "c1", RedirectURI: "https://app.example/cb",
			Subject: "alice", Resource: "https://mcp.example/mcp", CodeChallenge: "ch",
			GrantID: "g1", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute),
		}},
		refresh: []*RefreshToken{
			testRefresh("rt-1", "g1", "c1"), testRefresh("rt-2", "g1", "c1"),
			testRefresh("rt-3", "g2", "c2"),
		},
		consents: []*Consent{
			{Subject: "alice", ClientID: "c2", Scope: "mcp", GrantedAt: t0},
			{Subject: "alice", ClientID: "c1", Scope: "mcp", GrantedAt: t0},
			{Subject: "bob", ClientID: "c1", GrantedAt: t0},
		},
		keys: []*SigningKey{
			{ID: "k2", Algorithm: "ES256", PrivateKey: []byte{2}, CreatedAt: t0.Add(time.Hour)},
			{ID: "k1", Algorithm: "ES256", PrivateKey: []byte{1}, CreatedAt: t0},
		},
		users: []*User{
			{Name: "bob", PasswordHash: "$2a$bob", CreatedAt: t0},
			{Name: "admin", PasswordHash: "$2a$admin", CreatedAt: t0},
		},
		revs: []*Revocation{{Key: "jti:abc", ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}},
	}
}

func (f fixture) putAll(tx *Txn) error {
	var errs []error
	for _, c := range f.clients {
		errs = append(errs, tx.PutClient(c))
	}
	for _, c := range f.codes {
		errs = append(errs, tx.PutAuthCode(c))
	}
	for _, r := range f.refresh {
		errs = append(errs, tx.PutRefreshToken(r))
	}
	for _, c := range f.consents {
		errs = append(errs, tx.PutConsent(c))
	}
	for _, k := range f.keys {
		errs = append(errs, tx.PutSigningKey(k))
	}
	for _, u := range f.users {
		errs = append(errs, tx.PutUser(u))
	}
	for _, r := range f.revs {
		errs = append(errs, tx.PutRevocation(r))
	}
	return errors.Join(errs...)
}

// state is everything a Store shows, for comparing stores.
type state struct {
	Clients  []*Client
	Codes    []*AuthCode
	Refresh  []*RefreshToken
	Consents []*Consent
	Keys     []*SigningKey
	Users    []*User
	Revs     []*Revocation
}

func stateOf(s *Store) state {
	tx := s.layers()
	return state{
		Clients:  s.Clients(),
		Codes:    all[AuthCode](tx, tableCodes, indexID),
		Refresh:  all[RefreshToken](tx, tableRefreshTokens, indexID),
		Consents: all[Consent](tx, tableConsents, indexID),
		Keys:     s.SigningKeys(),
		Users:    s.Users(),
		Revs:     all[Revocation](tx, tableRevocations, indexID),
	}
}

func TestRoundTrip(t *testing.T) {
	s, _ := openTest(t, Options{})
	f := testFixture()
	update(t, s, f.putAll)

	tests := []struct {
		name string
		got  any
		want any
	}{
		{"client", s.Client("c1"), f.clients[1]},
		{"missing client", s.Client("nope"), (*Client)(nil)},
		{"clients sorted by id", ids(s.Clients()), []string{"c1", "c2", "c3"}},
		{"auth code", s.AuthCode("code-1"), f.codes[0]},
		{"refresh token", s.RefreshToken("rt-3"), f.refresh[2]},
		{"refresh by client", s.RefreshTokensByClient("c1"), f.refresh[:2]},
		{"consent", s.Consent("alice", "c2"), f.consents[0]},
		{"consents of alice", s.Consents("alice"), []*Consent{f.consents[1], f.consents[0]}},
		{"signing keys oldest first", s.SigningKeys(), []*SigningKey{f.keys[1], f.keys[0]}},
		{"user", s.User("bob"), f.users[0]},
		{"users sorted by name", s.Users(), []*User{f.users[1], f.users[0]}},
		{"revoked", s.Revoked("jti:abc"), true},
		{"not revoked", s.Revoked("jti:zzz"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func ids(cs []*Client) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func TestTxnReads(t *testing.T) {
	s, _ := openTest(t, Options{})
	f := testFixture()
	update(t, s, func(tx *Txn) error {
		if err := f.putAll(tx); err != nil {
			return err
		}
		checks := []struct {
			name string
			got  any
			want any
		}{
			{"client", tx.Client("c2"), f.clients[0]},
			{"code", tx.AuthCode("code-1"), f.codes[0]},
			{"refresh", tx.RefreshToken("rt-1"), f.refresh[0]},
			{"by grant", tx.RefreshTokensByGrant("g1"), f.refresh[:2]},
			{"by client", tx.RefreshTokensByClient("c2"), f.refresh[2:]},
			{"consent", tx.Consent("bob", "c1"), f.consents[2]},
			{"keys", tx.SigningKeys(), []*SigningKey{f.keys[1], f.keys[0]}},
			{"user", tx.User("admin"), f.users[1]},
			{"revoked", tx.Revoked("jti:abc"), true},
		}
		for _, c := range checks {
			if diff := cmp.Diff(c.want, c.got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", c.name, diff)
			}
		}
		if s.Client("c2") != nil {
			t.Errorf("Store.Client sees a write before its Update returned")
		}
		return nil
	})
}

func TestDeletes(t *testing.T) {
	tests := []struct {
		name  string
		del   func(tx *Txn) error
		check func(s *Store) any
		want  any
	}{
		{
			name:  "client cascades",
			del:   func(tx *Txn) error { return tx.DeleteClient("c1") },
			check: func(s *Store) any { return stateOf(s) },
			want: func() any {
				f := testFixture()
				return state{
					Clients:  []*Client{f.clients[0], f.clients[2]},
					Refresh:  f.refresh[2:],
					Consents: []*Consent{f.consents[0]},
					Keys:     []*SigningKey{f.keys[1], f.keys[0]},
					Users:    []*User{f.users[1], f.users[0]},
					Revs:     f.revs,
				}
			}(),
		},
		{
			name:  "auth code",
			del:   func(tx *Txn) error { return tx.DeleteAuthCode("code-1") },
			check: func(s *Store) any { return s.AuthCode("code-1") },
			want:  (*AuthCode)(nil),
		},
		{
			name:  "refresh token",
			del:   func(tx *Txn) error { return tx.DeleteRefreshToken("rt-1") },
			check: func(s *Store) any { return len(s.RefreshTokensByClient("c1")) },
			want:  1,
		},
		{
			name:  "consent",
			del:   func(tx *Txn) error { return tx.DeleteConsent("alice", "c1") },
			check: func(s *Store) any { return len(s.Consents("alice")) },
			want:  1,
		},
		{
			name:  "user",
			del:   func(tx *Txn) error { return tx.DeleteUser("bob") },
			check: func(s *Store) any { return s.User("bob") },
			want:  (*User)(nil),
		},
		{
			name:  "signing key",
			del:   func(tx *Txn) error { return tx.DeleteSigningKey("k1") },
			check: func(s *Store) any { return len(s.SigningKeys()) },
			want:  1,
		},
		{
			name:  "revocation",
			del:   func(tx *Txn) error { return tx.DeleteRevocation("jti:abc") },
			check: func(s *Store) any { return s.Revoked("jti:abc") },
			want:  false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTest(t, Options{})
			update(t, s, testFixture().putAll)
			update(t, s, tt.del)
			if diff := cmp.Diff(tt.want, tt.check(s)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeleteMissing(t *testing.T) {
	s, _ := openTest(t, Options{})
	dels := map[string]func(tx *Txn) error{
		"client":     func(tx *Txn) error { return tx.DeleteClient("x") },
		"code":       func(tx *Txn) error { return tx.DeleteAuthCode("x") },
		"refresh":    func(tx *Txn) error { return tx.DeleteRefreshToken("x") },
		"consent":    func(tx *Txn) error { return tx.DeleteConsent("x", "y") },
		"user":       func(tx *Txn) error { return tx.DeleteUser("x") },
		"key":        func(tx *Txn) error { return tx.DeleteSigningKey("x") },
		"revocation": func(tx *Txn) error { return tx.DeleteRevocation("x") },
	}
	for name, del := range dels {
		t.Run(name, func(t *testing.T) {
			err := s.Update(context.Background(), del)
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("got %v, want ErrNotFound", err)
			}
		})
	}
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	s, _ := openTest(t, Options{})
	boom := errors.New("boom")
	err := s.Update(context.Background(), func(tx *Txn) error {
		if err := tx.PutClient(testClient("c1")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want %v", err, boom)
	}
	if c := s.Client("c1"); c != nil {
		t.Errorf("client of a failed Update is visible: %+v", c)
	}
	update(t, s, func(tx *Txn) error {
		if c := tx.Client("c1"); c != nil {
			t.Errorf("client of a failed Update is visible to the next Txn")
		}
		return nil
	})
}

func TestPutCopies(t *testing.T) {
	s, _ := openTest(t, Options{})
	c := testClient("c1")
	update(t, s, func(tx *Txn) error { return tx.PutClient(c) })
	c.RedirectURIs[0] = "https://evil.example/"
	c.Name = "changed"
	if diff := cmp.Diff(testClient("c1"), s.Client("c1")); diff != "" {
		t.Errorf("stored client changed with the caller's copy (-want +got):\n%s", diff)
	}
}

func TestPutInvalid(t *testing.T) {
	s, _ := openTest(t, Options{})
	puts := map[string]func(tx *Txn) error{
		"client":     func(tx *Txn) error { return tx.PutClient(&Client{}) },
		"nil client": func(tx *Txn) error { return tx.PutClient(nil) },
		"code":       func(tx *Txn) error { return tx.PutAuthCode(&AuthCode{}) },
		"refresh":    func(tx *Txn) error { return tx.PutRefreshToken(&RefreshToken{}) },
		"consent":    func(tx *Txn) error { return tx.PutConsent(&Consent{Subject: "a"}) },
		"key":        func(tx *Txn) error { return tx.PutSigningKey(&SigningKey{}) },
		"user":       func(tx *Txn) error { return tx.PutUser(&User{}) },
		"revocation": func(tx *Txn) error { return tx.PutRevocation(&Revocation{}) },
	}
	for name, put := range puts {
		t.Run(name, func(t *testing.T) {
			if err := s.Update(context.Background(), put); err == nil {
				t.Errorf("Update accepted a record without a key")
			}
		})
	}
}

func TestUpdatePanicReleasesWriter(t *testing.T) {
	s, _ := openTest(t, Options{})
	func() {
		defer func() { recover() }()
		s.Update(context.Background(), func(tx *Txn) error {
			tx.PutClient(testClient("p"))
			panic("boom")
		})
	}()
	update(t, s, func(tx *Txn) error {
		if tx.Client("p") != nil {
			t.Errorf("the write of a panicking Update is visible")
		}
		return tx.PutClient(testClient("q"))
	})
}
