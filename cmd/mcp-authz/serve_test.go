package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mcp-authz/mcp-authz/authz/oauth"
	"github.com/mcp-authz/mcp-authz/internal/syncbuf"
	"github.com/mcp-authz/mcp-authz/registry"
)

// loopbackArgs are serve flags that put every listener on a free loopback
// port, so that a serve that should refuse but starts does not collide.
var loopbackArgs = []string{
	"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
	"--admin-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
}

func serveArgs(dataDir string, extra ...string) []string {
	args := append([]string{"serve", "--data-dir", dataDir}, loopbackArgs...)
	return append(args, extra...)
}

// busyAddr returns the address of a loopback listener held until the test
// ends.
func busyAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// TestServeRefusesBeforeAnyState checks that a start that cannot succeed
// fails before it opens the data directory: no signing key, no admin user,
// and so no generated password shown for nothing and never again.
func TestServeRefusesBeforeAnyState(t *testing.T) {
	dir := t.TempDir()
	tokenFile := func(name, body string) string {
		p := filepath.Join(dir, name)
		cfg := "registration:\n  mode: token\n  initial_access_tokens_file: " +
			filepath.Join(dir, name+".tokens") + "\n"
		if body != "" {
			if err := os.WriteFile(p+".tokens", []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"http port in use", []string{"--http-addr", busyAddr(t)}, "address already in use"},
		{"metrics port in use", []string{"--metrics-addr", busyAddr(t)}, "metrics address"},
		{"unknown registration mode", []string{"--registration-mode", "maybe"}, "maybe"},
		{"token mode without tokens", []string{"--registration-mode", "token"}, "token"},
		{"dev mode on a public issuer",
			[]string{"--dev-mode", "true", "--issuer", "https://mcp.example.com"}, "loopback"},
		{"port alone", []string{"--http-addr", "9000"}, "HOST:PORT"},
		{"port out of range", []string{"--metrics-addr", "nope:99999"}, "65535"},
		{"missing tokens file", []string{"--config", tokenFile("missing", "")},
			"reading initial access tokens"},
		{"tokens file without tokens", []string{"--config", tokenFile("empty", "# none\n")},
			"holds no token"},
		{"issuer with a trailing slash", []string{"--issuer", "http://localhost:9000/"},
			"slash"},
		{"unexpected argument", []string{"--dev-mode", "yes"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			r := runLine(t, nil, "", serveArgs(dataDir, tt.args...)...)
			if r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
				t.Fatalf("serve = %v, want an error mentioning %q\n%s", r.err, tt.want, r.stderr)
			}
			if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the refused start made the data directory (%v)", err)
			}
			if strings.Contains(r.stderr, "password=") {
				t.Errorf("the refused start showed a password:\n%s", r.stderr)
			}
		})
	}
}

// startServe runs serve in process until it is ready and returns its log
// and a function that stops it and returns its error.
func startServe(t *testing.T, env map[string]string, args ...string) (*syncbuf.Buffer,
	func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	logs := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, func(k string) string { return env[k] },
			strings.NewReader(""), &syncbuf.Buffer{}, logs)
	}()
	stop := func() error {
		cancel()
		return <-done
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "mcp-authz ready") {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serve ended during start: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("serve not ready after 20s\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return logs, stop
}

// TestAdminPasswordFromEnvOnlyOnFirstStart checks that the variable sets the
// password on the start that creates admin, and that a later start says it
// is ignored and how to reset the password, instead of keeping silent.
func TestAdminPasswordFromEnvOnlyOnFirstStart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"MCP_AUTHZ_ADMIN_PASSWORD": "first-password"}
	logs, stop := startServe(t, env, serveArgs(dataDir)...)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "from MCP_AUTHZ_ADMIN_PASSWORD") ||
		strings.Contains(logs.String(), "ignored") {
		t.Errorf("first start:\n%s", logs)
	}

	env["MCP_AUTHZ_ADMIN_PASSWORD"] = "second-password"
	logs, stop = startServe(t, env, serveArgs(dataDir)...)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"level=WARN", "MCP_AUTHZ_ADMIN_PASSWORD is ignored",
		"mcp-authz users set-password admin"} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("second start does not say %q:\n%s", w, logs)
		}
	}
	if strings.Contains(logs.String(), "second-password") {
		t.Error("the log shows the password")
	}
	requirePassword(t, dataDir, oauth.AdminUser, "first-password")
}

// TestServeWarnsOfRepairVariable checks that MCP_AUTHZ_REPAIR, which looks
// like every other setting's variable, is not silently ignored.
func TestServeWarnsOfRepairVariable(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"MCP_AUTHZ_REPAIR": "true"}
	logs, stop := startServe(t, env, serveArgs(dataDir)...)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "MCP_AUTHZ_REPAIR is not read") {
		t.Errorf("no warning about MCP_AUTHZ_REPAIR:\n%s", logs)
	}
}

// requirePassword fails unless user's stored hash matches password.
func requirePassword(t *testing.T, dataDir, user, password string) {
	t.Helper()
	store, err := registry.OpenReadOnly(t.Context(), dataDir, registry.Options{
		Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	u := store.User(user)
	if u == nil {
		t.Fatalf("no user %q", user)
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		t.Errorf("the password of %s is not %q", user, password)
	}
}

// TestServeCreatesAdminLast checks that what only the authorization server
// can find wrong (here a pre-registered client's missing secret file), found
// after the data directory is opened, still stops the start before the user
// admin and its one-time password exist.
func TestServeCreatesAdminLast(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	err := os.WriteFile(file, []byte("clients:\n  - id: a\n    secret_file: "+
		filepath.Join(dir, "missing")+"\n    redirect_uris: [https://a.example/cb]\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	r := runLine(t, nil, "", serveArgs(dataDir, "--config", file)...)
	if r.err == nil || !strings.Contains(r.err.Error(), "secret") {
		t.Fatalf("serve = %v, want the secret file named", r.err)
	}
	if strings.Contains(r.stderr, "password=") {
		t.Errorf("the refused start showed a password:\n%s", r.stderr)
	}
	store, err := registry.OpenReadOnly(t.Context(), dataDir, registry.Options{
		Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if users := store.Users(); len(users) != 0 {
		t.Errorf("the refused start created %d user(s)", len(users))
	}
}

// TestServeChecksAdminPasswordFirst checks that an admin password that
// set-password would refuse stops serve before the data directory exists.
func TestServeChecksAdminPasswordFirst(t *testing.T) {
	tests := []struct {
		name, password, want string
	}{
		{"too long", strings.Repeat("x", 80), "too long"},
		{"too short", "short", "too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			env := map[string]string{"MCP_AUTHZ_ADMIN_PASSWORD": tt.password}
			r := runLine(t, env, "", serveArgs(dataDir)...)
			if r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
				t.Fatalf("serve = %v, want an error mentioning %q", r.err, tt.want)
			}
			if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the refused start made the data directory (%v)", err)
			}
		})
	}
}
