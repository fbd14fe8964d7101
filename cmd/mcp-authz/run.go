package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

const usage = `usage: mcp-authz [command] [flags]

commands:
  serve                 run the authorization server and ext_authz service (default)
  clients list          list client registrations
  clients show ID       show one registration
  clients revoke ID     revoke a registration and everything issued to it
  data verify [DIR]     check every snapshot and log record; non-zero exit on damage
  data dump [DIR]       print the registry as JSON (secrets as fingerprints only)
  data compact [DIR]    snapshot and compact a stopped server's data directory
  health                exit 0 when the local server answers /readyz (for container health checks)
  help                  show this text

Run "mcp-authz serve -h" for the flags; every flag is also an MCP_AUTHZ_*
environment variable and a key of the YAML file given by --config.
`

// run dispatches a command line. It is main without the process around it.
func run(ctx context.Context, args []string, getenv func(string) string,
	stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stderr)
	case "clients":
		return clients(ctx, args, getenv, stdout)
	case "data":
		return data(ctx, args, getenv, stdout)
	case "health":
		return health(ctx, args, getenv)
	case "help":
		_, err := io.WriteString(stdout, usage)
		return err
	default:
		return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
	}
}

// health asks the server on this host's HTTP address whether it is ready.
func health(ctx context.Context, args []string, getenv func(string) string) error {
	cfg, _, err := loadConfig(args, getenv, nil)
	if err != nil {
		return err
	}
	_, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("health: http address %q: %w", cfg.HTTPAddr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		"http://"+net.JoinHostPort("127.0.0.1", port)+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: /readyz answered %s", resp.Status)
	}
	return nil
}
