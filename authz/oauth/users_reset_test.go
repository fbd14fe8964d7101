package oauth

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestSetPassword checks that SetPassword changes an existing user's
// password without touching the rest of the record, and creates a user
// that does not exist.
func TestSetPassword(t *testing.T) {
	t.Parallel()
	store := openStore(t)
	if _, err := EnsureAdmin(t.Context(), store, "old-password"); err != nil {
		t.Fatal(err)
	}
	before := store.User(AdminUser)

	tests := []struct {
		name, user, password string
		wantCreated          bool
	}{
		{"existing user", AdminUser, "new-password", false},
		{"again", AdminUser, "newer-password", false},
		{"new user", "bob", "bobs-password", true},
		{"longest password bcrypt reads", "carol", strings.Repeat("p", MaxPasswordLength), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created, err := SetPassword(t.Context(), store, tt.user, tt.password)
			if err != nil {
				t.Fatal(err)
			}
			if created != tt.wantCreated {
				t.Errorf("created = %v, want %v", created, tt.wantCreated)
			}
			u := store.User(tt.user)
			if u == nil {
				t.Fatalf("no user %q", tt.user)
			}
			if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(tt.password)) != nil {
				t.Error("the stored hash does not verify the new password")
			}
			if u.CreatedAt.IsZero() || time.Since(u.CreatedAt) > time.Hour {
				t.Errorf("created at %v", u.CreatedAt)
			}
		})
	}

	after := store.User(AdminUser)
	if !after.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("creation time changed from %v to %v", before.CreatedAt, after.CreatedAt)
	}
	if bcrypt.CompareHashAndPassword([]byte(before.PasswordHash), []byte("old-password")) != nil {
		t.Error("the record read before the change was changed in place")
	}
	if gen, err := EnsureAdmin(t.Context(), store, "env-password"); err != nil || gen != "" {
		t.Errorf("EnsureAdmin after a reset = %q, %v; want nothing done", gen, err)
	}
}

func TestSetPasswordRefuses(t *testing.T) {
	t.Parallel()
	store := openStore(t)
	tests := []struct {
		name, user, password, want string
	}{
		{"short password", "admin", "short", "too short"},
		{"password bcrypt would cut", "admin", strings.Repeat("p", MaxPasswordLength+1),
			"too long"},
		{"empty name", "", "long-enough", "want 1 to 64 bytes"},
		{"long name", strings.Repeat("n", MaxUserNameLength+1), "long-enough", "want 1 to"},
		{"name with a space", "a b", "long-enough", "no spaces"},
		{"name with a control character", "a\x00", "long-enough", "control"},
		{"name that is not UTF-8", "a\xff", "long-enough", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SetPassword(t.Context(), store, tt.user, tt.password)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("SetPassword = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	if n := len(store.Users()); n != 0 {
		t.Errorf("%d users stored by refused calls", n)
	}
}

func TestNewPassword(t *testing.T) {
	t.Parallel()
	a, b := NewPassword(), NewPassword()
	if a == b || CheckPassword(a) != nil || len(a) < 20 {
		t.Errorf("NewPassword gave %q and %q", a, b)
	}
}
