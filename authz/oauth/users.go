package oauth

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mcp-authz/mcp-authz/registry"
)

// AdminUser is the name of the user EnsureAdmin creates.
const AdminUser = "admin"

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
		generated = randomToken(18)
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
