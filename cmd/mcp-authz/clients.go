package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcp-authz/mcp-authz/authz/admin"
	"github.com/mcp-authz/mcp-authz/authz/oauth"
	"github.com/mcp-authz/mcp-authz/registry"
)

// clientOps is what `mcp-authz clients` does, either through a running
// server's admin API or on the registry directly when no server holds it.
type clientOps interface {
	ListClients(ctx context.Context) ([]admin.ClientView, error)
	ShowClient(ctx context.Context, id string) (admin.ClientView, error)
	RevokeClient(ctx context.Context, id string) (admin.ClientView, error)
}

// clientsUsage ends the errors of `mcp-authz clients`.
const clientsUsage = "want list, show ID or revoke ID (flags before or after the verb; " +
	"see mcp-authz clients -h)"

// clients runs `mcp-authz clients list|show|revoke`. Its warnings, such as a
// torn log tail found on the way, go to stderr.
func clients(ctx context.Context, args []string, getenv func(string) string,
	stdout, stderr io.Writer) error {
	cfg, rest, err := loadSettings("clients", []string{"data-dir"}, args, getenv, nil)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return errors.New("clients: " + clientsUsage)
	}
	verb, rest := rest[0], rest[1:]
	want := map[string]int{"list": 0, "show": 1, "revoke": 1}
	n, ok := want[verb]
	switch {
	case !ok:
		return fmt.Errorf("clients: unknown verb %q: %s", verb, clientsUsage)
	case len(rest) != n:
		return fmt.Errorf("clients %s: want %d client id(s), got %q: %s", verb, n, rest,
			clientsUsage)
	}

	ops, closeOps, err := openClientOps(ctx, cfg.DataDir, verb == "revoke", stderr)
	if err != nil {
		return err
	}
	defer closeOps()

	var out any
	switch verb {
	case "list":
		out, err = ops.ListClients(ctx)
	case "show":
		out, err = ops.ShowClient(ctx, rest[0])
	case "revoke":
		out, err = ops.RevokeClient(ctx, rest[0])
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// openClientOps prefers the running server's admin API. When no server
// answers it reads the registry without changing it, or, to write, opens it
// (which fails clearly if a server holds the lock but its API cannot be
// reached). Either way it refuses a directory that holds no registry.
func openClientOps(ctx context.Context, dataDir string, write bool,
	stderr io.Writer) (clientOps, func(), error) {
	if ep, err := admin.ReadEndpoint(dataDir); err == nil {
		c := &admin.Client{Endpoint: ep, HTTP: &http.Client{Timeout: 10 * time.Second}}
		if _, err := c.ListClients(ctx); err == nil {
			return c, func() {}, nil
		}
	}
	logger := warnLogger(stderr)
	if !write {
		store, err := registry.OpenReadOnly(ctx, dataDir, registry.Options{Logger: logger})
		if err != nil {
			return nil, nil, fmt.Errorf("clients: no running server answered and the "+
				"registry could not be read: %w", registryError(dataDir, err))
		}
		return storeOps{store}, func() { store.Close() }, nil
	}
	store, err := openForWrite(ctx, dataDir, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("clients: no running server answered: %w", err)
	}
	return storeOps{store}, func() { store.Close() }, nil
}

// warnLogger writes a command's warnings (not its progress) to w.
func warnLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openForWrite opens a stopped server's registry to change it, taking the
// directory's lock. Unlike registry.Open it refuses a directory that does
// not exist or holds no registry, instead of creating one.
func openForWrite(ctx context.Context, dir string, logger *slog.Logger) (*registry.Store,
	error) {
	if err := checkRegistryDir(dir); err != nil {
		return nil, err
	}
	// A running server's lock refuses it, with a message saying so.
	return registry.Open(ctx, dir, registry.Options{Logger: logger})
}

// checkRegistryDir fails unless dir holds a registry, saying where dir is.
func checkRegistryDir(dir string) error {
	if err := registry.CheckDir(dir); err != nil {
		return registryError(dir, err)
	}
	return nil
}

// registryError adds to an error that wraps registry.ErrNoRegistry where the
// directory is and how to name the right one.
func registryError(dir string, err error) error {
	if !errors.Is(err, registry.ErrNoRegistry) {
		return err
	}
	where := ""
	if abs, aerr := filepath.Abs(dir); aerr == nil && abs != dir {
		where = " (" + abs + ")"
	}
	return fmt.Errorf("%w%s; give the server's data directory with --data-dir or "+
		"%sDATA_DIR", err, where, envPrefix)
}

// storeOps does the client operations on an open registry.
type storeOps struct{ store *registry.Store }

func (s storeOps) ListClients(context.Context) ([]admin.ClientView, error) {
	return admin.ListClients(s.store), nil
}

func (s storeOps) ShowClient(_ context.Context, id string) (admin.ClientView, error) {
	return admin.ShowClient(s.store, id)
}

func (s storeOps) RevokeClient(ctx context.Context, id string) (admin.ClientView, error) {
	return admin.RevokeClient(ctx, s.store, id)
}

// generateFlag adds the --generate flag of `users set-password`.
func generateFlag(fs *flag.FlagSet, generate *bool) {
	fs.BoolVar(generate, "generate", false, "generate a random password and print it once")
}

// usersUsage ends the errors of `mcp-authz users`.
const usersUsage = "want set-password NAME (see mcp-authz users -h)"

// users runs `mcp-authz users set-password NAME` on a stopped server's data
// directory: the way back in when the admin password is lost.
func users(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader,
	stdout, stderr io.Writer) error {
	var generate bool
	cfg, rest, err := loadSettings("users", []string{"data-dir"}, args, getenv,
		func(fs *flag.FlagSet) { generateFlag(fs, &generate) })
	if err != nil {
		return err
	}
	if len(rest) != 2 || rest[0] != "set-password" {
		return fmt.Errorf("users: got %q: %s", rest, usersUsage)
	}
	name := rest[1]
	if err := oauth.CheckUserName(name); err != nil {
		return fmt.Errorf("users set-password: %w", err)
	}
	// A mistyped directory is named before a password is asked for.
	if err := checkRegistryDir(cfg.DataDir); err != nil {
		return fmt.Errorf("users set-password: %w", err)
	}
	password, err := newPassword(generate, getenv, stdin, stderr, name)
	if err != nil {
		return fmt.Errorf("users set-password: %w", err)
	}

	store, err := openForWrite(ctx, cfg.DataDir, warnLogger(stderr))
	if err != nil {
		return fmt.Errorf("users set-password: %w", err)
	}
	created, err := oauth.SetPassword(ctx, store, name, password)
	if cerr := store.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing registry: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("users set-password: %w", err)
	}

	done := "set the password of user"
	if created {
		done = "created user"
	}
	fmt.Fprintf(stdout, "%s %s in %s\n", done, name, cfg.DataDir)
	if generate {
		fmt.Fprintf(stdout, "password: %s\n(shown only this once)\n", password)
	}
	return nil
}

// newPassword returns the password `users set-password` sets: a generated
// one, MCP_AUTHZ_NEW_PASSWORD, or the first line of stdin. Never a flag,
// which would show in the process listing and the shell history.
func newPassword(generate bool, getenv func(string) string, stdin io.Reader,
	prompt io.Writer, name string) (string, error) {
	env := getenv(envPrefix + "NEW_PASSWORD")
	switch {
	case generate && env != "":
		return "", errors.New("--generate and " + envPrefix + "NEW_PASSWORD are both " +
			"given; use one")
	case generate:
		return oauth.NewPassword(), nil
	case env != "":
		return env, oauth.CheckPassword(env)
	}
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintf(prompt, "new password for %s (shown as typed; use --generate or "+
				"%sNEW_PASSWORD to avoid that): ", name, envPrefix)
		}
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return "", errors.New("no password: set " + envPrefix + "NEW_PASSWORD, give it " +
			"on standard input, or use --generate")
	}
	return password, oauth.CheckPassword(password)
}
