package main

import (
	"context"
	"fmt"
	"io"
)

const usage = `usage: mcp-authz [command] [flags]

commands:
  serve                 run the authorization server and ext_authz service (default)
  clients list          list client registrations
  clients show ID       show one registration
  clients revoke ID     revoke a registration and everything issued to it
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
	case "help":
		_, err := io.WriteString(stdout, usage)
		return err
	default:
		return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
	}
}
