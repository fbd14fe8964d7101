package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/mcp-authz/mcp-authz/authz/admin"
	"github.com/mcp-authz/mcp-authz/registry"
)

// clientOps is what `mcp-authz clients` does, either through a running
// server's admin API or on the registry directly when no server holds it.
type clientOps interface {
	ListClients(ctx context.Context) ([]admin.ClientView, error)
	ShowClient(ctx context.Context, id string) (admin.ClientView, error)
	RevokeClient(ctx context.Context, id string) (admin.ClientView, error)
}

// clients runs `mcp-authz clients list|show|revoke`.
func clients(ctx context.Context, args []string, getenv func(string) string,
	stdout io.Writer) error {
	cfg, rest, err := loadConfig(args, getenv, nil)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return errors.New("clients: want list, show ID or revoke ID")
	}
	verb, rest := rest[0], rest[1:]
	want := map[string]int{"list": 0, "show": 1, "revoke": 1}
	n, ok := want[verb]
	if !ok || len(rest) != n {
		return fmt.Errorf("clients %s: want list, show ID or revoke ID", verb)
	}

	ops, closeOps, err := openClientOps(ctx, cfg.DataDir)
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

// openClientOps prefers the running server's admin API; when no server
// answers, it opens the registry itself (which fails clearly if a server
// holds the lock but its API cannot be reached).
func openClientOps(ctx context.Context, dataDir string) (clientOps, func(), error) {
	if ep, err := admin.ReadEndpoint(dataDir); err == nil {
		c := &admin.Client{Endpoint: ep, HTTP: &http.Client{Timeout: 10 * time.Second}}
		if _, err := c.ListClients(ctx); err == nil {
			return c, func() {}, nil
		}
	}
	logger := slog.New(slog.DiscardHandler)
	store, err := registry.Open(ctx, dataDir, registry.Options{Logger: logger})
	if err != nil {
		return nil, nil, fmt.Errorf("no running server answered and the registry "+
			"could not be opened: %w", err)
	}
	return storeOps{store}, func() { store.Close() }, nil
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
