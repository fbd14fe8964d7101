package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/mcp-authz/mcp-authz/registry"
)

// AdminUser is the name of the user EnsureAdmin creates.
const AdminUser = "admin"

// Bounds of what SetPassword accepts. bcrypt reads no more than 72 bytes,
// so a longer password would be cut silently.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 72
	MaxUserNameLength = 64
)

// NewPassword returns a random password of 24 URL-safe characters.
func NewPassword() string { return randomToken(18) }

// CheckPassword reports why SetPassword would refuse password, or nil.
func CheckPassword(password string) error {
	switch {
	case len(password) < MinPasswordLength:
		return fmt.Errorf("password too short: want at least %d characters",
			MinPasswordLength)
	case len(password) > MaxPasswordLength:
		return fmt.Errorf("password too long: want at most %d bytes", MaxPasswordLength)
	}
	return nil
}

// CheckUserName reports why SetPassword would refuse name, or nil: a user
// name is 1 to 64 bytes of UTF-8 without spaces or control characters.
func CheckUserName(name string) error {
	switch {
	case name == "" || len(name) > MaxUserNameLength:
		return fmt.Errorf("user name %q: want 1 to %d bytes", name, MaxUserNameLength)
	case !utf8.ValidString(name):
		return errors.New("user name is not valid UTF-8")
	case strings.ContainsFunc(name, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}):
		return fmt.Errorf("user name %q: no spaces or control characters", name)
	}
	return nil
}

// SetPassword sets the password of the user name, creating the user when
// there is none, and reports whether it did. Only the bcrypt hash is
// stored. It is meant for the registry of a stopped server (`mcp-authz users
// set-password`): a running server would keep its signed-in sessions.
func SetPassword(ctx context.Context, store *registry.Store, name, password string) (
	created bool, err error) {
	if err := CheckUserName(name); err != nil {
		return false, err
	}
	if err := CheckPassword(password); err != nil {
		return false, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return false, fmt.Errorf("hashing password of user %q: %w", name, err)
	}
	err = store.Update(ctx, func(tx *registry.Txn) error {
		u := tx.User(name)
		created = u == nil
		if created {
			u = &registry.User{Name: name, CreatedAt: time.Now().UTC()}
		} else {
			u = u.Copy() // records read from the store are never changed
		}
		u.PasswordHash = string(hash)
		return tx.PutUser(u)
	})
	if err != nil {
		return false, fmt.Errorf("setting password of user %q: %w", name, err)
	}
	return created, nil
}

// EnsureAdmin creates the user "admin" when the registry has no users yet.
// Its password is password, or when password is empty a random one that is
// returned as generated so the caller can show it once. Only the bcrypt hash
// is stored. When users already exist it does nothing and returns "".
//
// The check for existing users reads the store before the write transaction
// (the transaction has no user listing); inside it only the admin user is
// checked again, so an admin created meanwhile is never overwritten.
func EnsureAdmin(ctx context.Context, store *registry.Store, password string) (generated string,
	err error) {
	if len(store.Users()) > 0 {
		return "", nil
	}
	if password == "" {
		generated = NewPassword()
		password = generated
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hashing password of user %q: %w", AdminUser, err)
	}
	created := false
	err = store.Update(ctx, func(tx *registry.Txn) error {
		if tx.User(AdminUser) != nil {
			return nil // created meanwhile by another instance
		}
		created = true
		return tx.PutUser(&registry.User{
			Name: AdminUser, PasswordHash: string(hash), CreatedAt: time.Now().UTC(),
		})
	})
	if err != nil {
		return "", fmt.Errorf("creating user %q: %w", AdminUser, err)
	}
	if !created {
		return "", nil
	}
	return generated, nil
}

// dummyHash is compared against when a login names no user, so that the
// answer takes as long as for a real user with a wrong password.
var dummyHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte(randomToken(16)), bcrypt.DefaultCost)
	if err != nil {
		panic(fmt.Sprintf("oauth: hashing the dummy password: %v", err))
	}
	return h
})

// authenticate checks a user's password and returns the user's subject.
func (s *Server) authenticate(name, password string) (string, bool) {
	hash := dummyHash()
	u := s.store.User(name)
	if u != nil {
		hash = []byte(u.PasswordHash)
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	if u == nil || !ok {
		return "", false
	}
	return u.Name, true
}

// userAttr names a user name typed into a sign-in form in a log line: as
// "user" when such a user exists, else only as a fingerprint ("user_fp"),
// since what was typed may be a password in the wrong field.
func (s *Server) userAttr(typed string) slog.Attr {
	if s.store.User(typed) != nil {
		return slog.String("user", typed)
	}
	return slog.String("user_fp", fingerprint(typed))
}
