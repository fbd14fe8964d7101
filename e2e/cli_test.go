package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runBinary runs mcp-authz with args in dir (the test's working directory
// when empty), with env added to the test's environment and stdin as its
// input, and returns its output and exit code.
func runBinary(t *testing.T, dir string, env []string, stdin string,
	args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("running mcp-authz %q: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// withoutEnv returns env without the variable name.
func withoutEnv(env []string, name string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, name+"=")
	})
}

var passwordRE = regexp.MustCompile(`shown only this once.* password=(\S+)`)

// TestFailedStartsKeepTheFirstPassword starts the binary wrongly in the ways
// a new user does, then rightly: only the right start creates admin, so its
// generated password is the one shown, and it works.
func TestFailedStartsKeepTheFirstPassword(t *testing.T) {
	p := newAuthzProc(t, "http://127.0.0.1:1/mcp")
	p.env = withoutEnv(p.env, "MCP_AUTHZ_ADMIN_PASSWORD")
	args := p.args

	busy, err := net.Listen("tcp", p.grpcAddr())
	if err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{
		nil, // the gRPC port is taken
		{"--registration-mode", "maybe"},
		{"--dev-mode", "--issuer", "https://mcp.example.com"},
		{"--http-addr", "9000"},
	} {
		p.args = append(slices.Clone(args), extra...)
		said := p.startFails(t)
		if strings.Contains(said, "password=") {
			t.Errorf("start with %q failed after showing a password:\n%s", extra, said)
		}
		if _, err := os.Stat(p.dataDir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("start with %q failed after making the data directory (%v)\n%s",
				extra, err, said)
		}
	}
	busy.Close()

	p.args = args
	p.start()
	m := passwordRE.FindStringSubmatch(p.logText())
	if m == nil {
		t.Fatalf("the first good start shows no password:\n%s", p.logText())
	}
	if err := p.login(t.Context(), "admin", m[1]); err != nil {
		t.Errorf("the password shown does not sign in: %v", err)
	}
}

// TestUsersSetPasswordWithBinary resets the admin password of a stopped
// server, after the running one refused, and signs in with it.
func TestUsersSetPasswordWithBinary(t *testing.T) {
	p := newAuthzProc(t, "http://127.0.0.1:1/mcp")
	p.start()
	env := []string{"MCP_AUTHZ_NEW_PASSWORD=the-new-password"}
	reset := []string{"users", "set-password", "admin", "--data-dir", p.dataDir}

	_, stderr, code := runBinary(t, "", env, "", reset...)
	if code == 0 || !strings.Contains(stderr, "locked") {
		t.Fatalf("set-password beside the running server: exit %d\n%s", code, stderr)
	}

	p.stop()
	stdout, stderr, code := runBinary(t, "", env, "", reset...)
	if code != 0 || !strings.Contains(stdout, "set the password of user admin") {
		t.Fatalf("set-password: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code = runBinary(t, "", nil, "piped-password\n", "users",
		"--data-dir", p.dataDir, "set-password", "bob")
	if code != 0 || !strings.Contains(stdout, "created user bob") {
		t.Fatalf("set-password from stdin: exit %d\n%s%s", code, stdout, stderr)
	}

	p.start()
	// The process environment still holds MCP_AUTHZ_ADMIN_PASSWORD.
	if !strings.Contains(p.logText(), "MCP_AUTHZ_ADMIN_PASSWORD is ignored") {
		t.Errorf("no warning that MCP_AUTHZ_ADMIN_PASSWORD is ignored:\n%s", p.logText())
	}
	if err := p.login(t.Context(), "admin", "the-new-password"); err != nil {
		t.Errorf("the new password does not sign in: %v", err)
	}
	if err := p.login(t.Context(), "bob", "piped-password"); err != nil {
		t.Errorf("the created user does not sign in: %v", err)
	}
	if err := p.login(t.Context(), "admin", "admin-password"); err == nil {
		t.Error("the old password still signs in")
	}
}

// login signs in as user on the authorization page for a new client and
// returns nil once it has an authorization code.
func (p *authzProc) login(ctx context.Context, user, password string) error {
	oc := newOAuthClient(p.issuer(), "http://127.0.0.1:1/mcp")
	id, err := oc.register(ctx, "login test")
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(rand.Text()))
	q := url.Values{
		"response_type": {"code"}, "client_id": {id}, "redirect_uri": {callbackURI},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}, "state": {"s"}, "resource": {oc.resource},
	}
	back, err := newUserAgent(callbackURI).authorize(ctx, p.issuer()+"/authorize?"+q.Encode(),
		user, password)
	if err != nil {
		return err
	}
	if back.Get("code") == "" {
		return errors.New("no code in " + back.Encode())
	}
	return nil
}

// TestCLIHelpAndDataDirectory runs the commands a new user tries first.
func TestCLIHelpAndDataDirectory(t *testing.T) {
	touchOnce.Do(func() { touchSources("..") })
	work := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string // in stdout for exit 0, else in stderr
	}{
		{"help flag", []string{"--help"}, 0, "default ./data"},
		{"serve help", []string{"serve", "-h"}, 0, "default 2m0s"},
		{"clients help", []string{"clients", "--help"}, 0, "usage: mcp-authz clients"},
		{"data help", []string{"data", "--help"}, 0, "usage: mcp-authz data"},
		{"help names the reset", []string{"help"}, 0, "users set-password NAME"},
		{"clients of a typo", []string{"clients", "list", "--data-dir", "TYPO"}, 1,
			"TYPO does not exist"},
		{"clients from the wrong directory", []string{"clients", "list"}, 1,
			filepath.Join(work, "data")},
		{"show from the wrong directory", []string{"clients", "show", "x"}, 1,
			"does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runBinary(t, work, nil, "", tt.args...)
			got := stdout
			if tt.wantCode != 0 {
				got = stderr
			}
			if code != tt.wantCode || !strings.Contains(got, tt.want) {
				t.Errorf("mcp-authz %q: exit %d, want %d and %q in\n%s%s", tt.args, code,
					tt.wantCode, tt.want, stdout, stderr)
			}
			if entries, _ := os.ReadDir(work); len(entries) != 0 {
				t.Fatalf("mcp-authz %q left %v in its working directory", tt.args, entries)
			}
		})
	}
}

// TestDevModeBareFlag starts the binary with --dev-mode alone, as a boolean
// flag is written.
func TestDevModeBareFlag(t *testing.T) {
	p := newAuthzProc(t, "http://127.0.0.1:1/mcp", "--dev-mode", "--log-format", "json")
	p.start()
	for _, w := range []string{`"dev_mode":true`, `"snapshot_records":` +
		strconv.Itoa(1_000_000) + `,`, `"code_ttl":"2m0s"`} {
		if !strings.Contains(p.logText(), w) {
			t.Errorf("start line without %s:\n%s", w, p.logText())
		}
	}
}
