package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz/oauth"
	"github.com/mcp-authz/mcp-authz/registry"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newRegistry makes a stopped server's data directory holding the clients
// with the given ids and the user admin, and returns its path.
func newRegistry(t *testing.T, ids ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	store, err := registry.Open(t.Context(), dir, registry.Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	err = store.Update(t.Context(), func(tx *registry.Txn) error {
		for _, id := range ids {
			err := tx.PutClient(&registry.Client{
				ID: id, RedirectURIs: []string{"http://127.0.0.1/cb"},
				TokenEndpointAuthMethod: "none", CreatedAt: time.Now(),
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oauth.EnsureAdmin(t.Context(), store, "admin-password"); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// listing returns the files of dir and their sizes, "" for none.
func listing(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fi.Size()
	}
	return out
}

func clientIDs(t *testing.T, out string) []string {
	t.Helper()
	var list []struct {
		ID string `json:"client_id"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("parsing %q: %v", out, err)
	}
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	return ids
}

// TestClientsRefuseMissingRegistry checks that no clients command takes a
// mistyped or empty directory for an empty registry, or creates anything.
func TestClientsRefuseMissingRegistry(t *testing.T) {
	work := t.TempDir()
	empty := filepath.Join(work, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)
	tests := []struct {
		name string
		args []string
		dir  string // what must stay as it was
		want string
	}{
		{"list of a typo", []string{"clients", "list", "--data-dir", "TYPO"}, "TYPO",
			"TYPO does not exist"},
		{"show of a typo", []string{"clients", "--data-dir", "TYPO", "show", "x"}, "TYPO",
			"TYPO does not exist"},
		{"revoke in a typo", []string{"clients", "--data-dir", "TYPO", "revoke", "x"}, "TYPO",
			"TYPO does not exist"},
		{"list from the wrong working directory", []string{"clients", "list"}, "data",
			filepath.Join(work, "data")},
		{"list of an empty directory", []string{"clients", "--data-dir", empty, "list"},
			empty, "holds no snapshot and no log segment"},
		{"revoke in an empty directory", []string{"clients", "revoke", "x", "--data-dir",
			empty}, empty, "holds no snapshot and no log segment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := listing(t, tt.dir)
			r := runLine(t, nil, "", tt.args...)
			if r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
				t.Fatalf("mcp-authz %q = %v, want an error mentioning %q\nstdout: %s",
					tt.args, r.err, tt.want, r.stdout)
			}
			if !strings.Contains(r.err.Error(), "--data-dir") {
				t.Errorf("error %q does not say how to name the directory", r.err)
			}
			after := listing(t, tt.dir)
			if len(after) != len(before) || (before == nil) != (after == nil) {
				t.Errorf("%s was %v before and is %v after", tt.dir, before, after)
			}
		})
	}
}

// TestClientsListReadsWithoutTheLock checks that list and show work on a
// directory another process holds (a server whose admin API does not
// answer), since they read without the lock, and that they find the
// clients wherever the flags are.
func TestClientsListReadsWithoutTheLock(t *testing.T) {
	dir := newRegistry(t, "c1", "c2")
	holder, err := registry.Open(t.Context(), dir, registry.Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Close() })

	for _, args := range [][]string{
		{"clients", "--data-dir", dir, "list"},
		{"clients", "list", "--data-dir", dir},
		{"clients", "list", "--data-dir=" + dir},
	} {
		r := runLine(t, nil, "", args...)
		if r.err != nil {
			t.Fatalf("%q: %v", args, r.err)
		}
		if got := clientIDs(t, r.stdout); len(got) != 2 {
			t.Errorf("%q listed %q, want c1 and c2", args, got)
		}
	}
	r := runLine(t, nil, "", "clients", "show", "c2", "--data-dir", dir)
	if r.err != nil || !strings.Contains(r.stdout, `"c2"`) {
		t.Errorf("show c2 = %v\n%s", r.err, r.stdout)
	}
	r = runLine(t, nil, "", "clients", "revoke", "c2", "--data-dir", dir)
	if r.err == nil || !strings.Contains(r.err.Error(), "locked") {
		t.Errorf("revoke beside the holder = %v, want the lock named", r.err)
	}
}

func TestClientsUsageErrors(t *testing.T) {
	dir := newRegistry(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no verb", []string{"clients", "--data-dir", dir}, "want list, show ID or revoke ID"},
		{"unknown verb", []string{"clients", "--data-dir", dir, "lsit"}, `unknown verb "lsit"`},
		{"show without id", []string{"clients", "--data-dir", dir, "show"}, "want 1 client id"},
		{"list with an id", []string{"clients", "--data-dir", dir, "list", "x"},
			"want 0 client id"},
		{"serve flag", []string{"clients", "--issuer", "x", "list"},
			"flag provided but not defined: -issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runLine(t, nil, "", tt.args...)
			if r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", r.err, tt.want)
			}
		})
	}
}

// TestClientsRevokeReportsRepairs checks that what Open repairs on the way
// (a torn log tail) is said on stderr rather than discarded.
func TestClientsRevokeReportsRepairs(t *testing.T) {
	dir := newRegistry(t, "c1", "c2")
	segs, err := filepath.Glob(filepath.Join(dir, "wal-*.log"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no log segment in %s (%v)", dir, err)
	}
	f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	r := runLine(t, nil, "", "clients", "--data-dir", dir, "revoke", "c1")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.Contains(r.stderr, "level=WARN") || !strings.Contains(r.stderr, "torn") {
		t.Errorf("stderr does not report the torn tail:\n%s", r.stderr)
	}
}

// TestUsersSetPassword checks the way back in when the admin password is
// lost: from the variable, standard input or generated, never from argv.
func TestUsersSetPassword(t *testing.T) {
	tests := []struct {
		name     string
		user     string
		env      map[string]string
		stdin    string
		extra    []string
		want     string // in stdout
		password string // "" when generated: read from stdout
	}{
		{"from the variable", "admin", map[string]string{"MCP_AUTHZ_NEW_PASSWORD": "from-env-pw"},
			"ignored-stdin", nil, "set the password of user admin", "from-env-pw"},
		{"from standard input", "admin", nil, "from-stdin-pw\r\nrest\n", nil,
			"set the password of user admin", "from-stdin-pw"},
		{"without a final newline", "admin", nil, "no-newline-pw", nil, "admin",
			"no-newline-pw"},
		{"generated", "admin", nil, "", []string{"--generate"}, "shown only this once", ""},
		{"new user", "bob", nil, "bobs-password\n", nil, "created user bob", "bobs-password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newRegistry(t)
			args := append([]string{"users", "set-password", tt.user, "--data-dir", dir},
				tt.extra...)
			r := runLine(t, tt.env, tt.stdin, args...)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !strings.Contains(r.stdout, tt.want) {
				t.Errorf("stdout %q does not say %q", r.stdout, tt.want)
			}
			password := tt.password
			if password == "" {
				_, after, ok := strings.Cut(r.stdout, "password: ")
				password, _, _ = strings.Cut(after, "\n")
				if !ok || len(password) < oauth.MinPasswordLength {
					t.Fatalf("no generated password in %q", r.stdout)
				}
			}
			requirePassword(t, dir, tt.user, password)
			if strings.Contains(r.stderr, password) {
				t.Errorf("stderr shows the password: %q", r.stderr)
			}
		})
	}
}

func TestUsersSetPasswordRefuses(t *testing.T) {
	dir := newRegistry(t)
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		stdin string
		want  string
	}{
		{"no password", []string{"set-password", "admin"}, nil, "", "no password"},
		{"short password", []string{"set-password", "admin"}, nil, "short\n", "too short"},
		{"password too long for bcrypt", []string{"set-password", "admin"}, nil,
			strings.Repeat("x", 73), "too long"},
		{"both sources", []string{"set-password", "--generate", "admin"},
			map[string]string{"MCP_AUTHZ_NEW_PASSWORD": "from-env-pw"}, "", "use one"},
		{"no name", []string{"set-password"}, nil, "", "want set-password NAME"},
		{"other verb", []string{"add", "bob"}, nil, "", "want set-password NAME"},
		{"name with a space", []string{"set-password", "a b"}, nil, "long-enough\n",
			"no spaces"},
		{"password as an argument", []string{"set-password", "admin", "hunter22"}, nil, "",
			"want set-password NAME"},
		{"typo directory", []string{"--data-dir", dir + "-typo", "set-password", "admin"},
			nil, "long-enough\n", "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"users", "--data-dir", dir}, tt.args...)
			r := runLine(t, tt.env, tt.stdin, args...)
			if r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", r.err, tt.want)
			}
		})
	}
	requirePassword(t, dir, oauth.AdminUser, "admin-password")
	if _, err := os.Stat(dir + "-typo"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the typo directory was created (%v)", err)
	}
}

// TestUsersSetPasswordNeedsStoppedServer checks that the lock of a running
// server refuses the change, so a server never runs on a registry changed
// under it.
func TestUsersSetPasswordNeedsStoppedServer(t *testing.T) {
	dir := newRegistry(t)
	holder, err := registry.Open(t.Context(), dir, registry.Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	env := map[string]string{"MCP_AUTHZ_NEW_PASSWORD": "new-password"}
	r := runLine(t, env, "", "users", "--data-dir", dir, "set-password", "admin")
	if r.err == nil || !errors.Is(r.err, registry.ErrLocked) {
		t.Fatalf("set-password beside a running server = %v, want ErrLocked", r.err)
	}
	holder.Close()
	requirePassword(t, dir, oauth.AdminUser, "admin-password")
}
