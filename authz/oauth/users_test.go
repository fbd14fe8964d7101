package oauth

import (
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/mcp-authz/mcp-authz/registry"
)

func openStore(t *testing.T) *registry.Store {
	t.Helper()
	s, err := registry.Open(t.Context(), t.TempDir(), registry.Options{Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestEnsureAdmin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		password      string
		wantGenerated bool
	}{
		{"given password", "correct horse", false},
		{"generated password", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := openStore(t)
			gen, err := EnsureAdmin(t.Context(), store, tt.password)
			if err != nil {
				t.Fatal(err)
			}
			if (gen != "") != tt.wantGenerated {
				t.Fatalf("generated = %q, want one: %v", gen, tt.wantGenerated)
			}
			pw := tt.password
			if gen != "" {
				pw = gen
				if len(gen) < 20 {
					t.Errorf("generated password %q is short", gen)
				}
			}
			u := store.User(AdminUser)
			if u == nil {
				t.Fatal("admin not created")
			}
			if u.PasswordHash == pw ||
				bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(pw)) != nil {
				t.Errorf("stored hash does not verify the password")
			}

			// A second start changes nothing.
			gen2, err := EnsureAdmin(t.Context(), store, "another")
			if err != nil || gen2 != "" {
				t.Fatalf("second EnsureAdmin = %q, %v", gen2, err)
			}
			if store.User(AdminUser).PasswordHash != u.PasswordHash {
				t.Errorf("second EnsureAdmin changed the password")
			}
		})
	}
}

func TestEnsureAdminKeepsExistingUsers(t *testing.T) {
	t.Parallel()
	store := openStore(t)
	err := store.Update(t.Context(), func(tx *registry.Txn) error {
		return tx.PutUser(&registry.User{Name: "bob", PasswordHash: userHash()})
	})
	if err != nil {
		t.Fatal(err)
	}
	if gen, err := EnsureAdmin(t.Context(), store, ""); err != nil || gen != "" {
		t.Fatalf("EnsureAdmin = %q, %v", gen, err)
	}
	if store.User(AdminUser) != nil {
		t.Errorf("admin created although users exist")
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		user, password string
		want           bool
	}{
		{testUser, testPassword, true},
		{testUser, "wrong", false},
		{testUser, "", false},
		{"nobody", testPassword, false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.user+"/"+tt.password, func(t *testing.T) {
			sub, ok := e.srv.authenticate(tt.user, tt.password)
			if ok != tt.want || (ok && sub != tt.user) {
				t.Errorf("authenticate = %q, %v; want %v", sub, ok, tt.want)
			}
		})
	}
}

// TestFailedLoginLogsNoTypedSecret checks that what is typed into the user
// name field of a sign-in form reaches the log only when it names a user:
// else it may be a password typed into the wrong field.
func TestFailedLoginLogsNoTypedSecret(t *testing.T) {
	t.Parallel()
	const typedPassword = "Correct-Horse-9"
	tests := []struct {
		name     string
		typed    string
		wantAttr string
	}{
		{"known user", testUser, "user=" + testUser},
		{"password in the user field", typedPassword, "user_fp=" + fingerprint(typedPassword)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			logs := e.logServer()
			client := e.publicClient(webRedirect)
			_, challenge := pkce()

			b := e.browser()
			resp := b.get(e.issuer + "/authorize?" +
				authParams(client, webRedirect, challenge).Encode())
			action, f := parseForm(t, e.issuer, readBody(t, resp))
			f.Set("username", tt.typed)
			f.Set("password", "wrong")
			b.post(action, f).Body.Close()

			// Enough failures on the consents page to lock the name out.
			lockAfter := e.srv.cfg.RateLimits.Lockout.Failures
			for range lockAfter {
				resp = b.get(e.issuer + "/consents")
				action, f = consentsForm(t, e.issuer, readBody(t, resp), stepLogin)
				f.Set("username", tt.typed)
				f.Set("password", "wrong")
				b.post(action, f).Body.Close()
			}

			for _, msg := range []string{"login failed", "sign-in locked"} {
				if len(logs.Lines(msg, tt.wantAttr)) == 0 {
					t.Errorf("no %q line with %s:\n%s", msg, tt.wantAttr, logs.Lines(msg))
				}
			}
			if tt.typed != testUser {
				if got := logs.Lines(tt.typed); len(got) != 0 {
					t.Errorf("the typed user name reached the log:\n%s", got)
				}
			}
		})
	}
}
