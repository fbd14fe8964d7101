package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

const usage = `usage: mcp-authz [command] [flags]

commands:
  serve                       run the authorization server and ext_authz service (default)
  clients list                list client registrations
  clients show ID             show one registration
  clients revoke ID           revoke a registration and everything issued to it
  users set-password NAME     set a user's password, creating the user if needed
                              (server stopped; password from MCP_AUTHZ_NEW_PASSWORD,
                              standard input, or --generate)
  data verify [DIR]           check every snapshot and log record; non-zero exit on damage
  data dump [DIR]             print the registry as JSON (secrets as fingerprints only)
  data compact [DIR]          snapshot and compact a stopped server's data directory
  health                      exit 0 when the local server answers /readyz
  help [COMMAND]              show this text, or a command's flags

Run "mcp-authz COMMAND -h" for a command's flags and their defaults. Every
flag of serve except --repair is also an MCP_AUTHZ_* environment variable and
a key of the YAML file given by --config (MCP_AUTHZ_CONFIG); serve -h names
them. Flags win over variables, variables over the file.
`

// commandHelp is the usage of one command: its synopsis and what it does,
// then its flags.
type commandHelp struct {
	synopsis string
	flags    func() *flag.FlagSet
}

// dataDirFlags is the flag set of the commands that read only the data
// directory (and the file that may name it).
func dataDirFlags(cmd string) func() *flag.FlagSet {
	return func() *flag.FlagSet {
		fs, _, _ := commandFlags(cmd, []string{"data-dir"})
		return fs
	}
}

var helps = map[string]commandHelp{
	"serve": {
		synopsis: `usage: mcp-authz [serve] [flags]

Runs the OAuth 2.1 authorization server, the ext_authz service, the admin API
and metrics. The first start creates a signing key and the user admin, whose
password is MCP_AUTHZ_ADMIN_PASSWORD or a generated one shown once in the log.`,
		flags: func() *flag.FlagSet {
			fs, _, _ := commandFlags("serve", nil)
			repairFlag(fs, new(bool))
			return fs
		},
	},
	"clients": {
		synopsis: `usage: mcp-authz clients [flags] list | show ID | revoke ID

Lists, shows or revokes client registrations as JSON, through the running
server's admin API, or on the data directory when no server runs (list and
show then read it without changing it).`,
		flags: dataDirFlags("clients"),
	},
	"users": {
		synopsis: `usage: mcp-authz users [flags] set-password NAME

Sets the password of user NAME (admin is the one the first start creates),
creating the user if there is none. The server must be stopped. The password
comes from MCP_AUTHZ_NEW_PASSWORD, else the first line of standard input;
with --generate a random one is printed once. Only its bcrypt hash is kept.`,
		flags: func() *flag.FlagSet {
			fs, _, _ := commandFlags("users", []string{"data-dir"})
			generateFlag(fs, new(bool))
			return fs
		},
	},
	"data": {
		synopsis: `usage: mcp-authz data [flags] verify|dump|compact [DIR]

verify checks every snapshot and log record, dump prints the registry as JSON,
compact snapshots a stopped server's data directory. DIR defaults to the
data directory setting.`,
		flags: dataDirFlags("data"),
	},
	"health": {
		synopsis: `usage: mcp-authz health [flags]

Exits 0 when the server on this host answers /readyz on the port of its HTTP
address (for container health checks).`,
		flags: func() *flag.FlagSet {
			fs, _, _ := commandFlags("health", []string{"http-addr"})
			return fs
		},
	},
}

// run dispatches a command line. It is main without the process around it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader,
	stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	} else if wantsHelp(args) {
		// mcp-authz -h: the commands, then the flags of the default one.
		return printHelp(stdout, "", "serve")
	}
	if _, known := helps[cmd]; known && wantsHelp(args) {
		return printHelp(stdout, cmd)
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stderr)
	case "clients":
		return clients(ctx, args, getenv, stdout, stderr)
	case "users":
		return users(ctx, args, getenv, stdin, stdout, stderr)
	case "data":
		return data(ctx, args, getenv, stdout)
	case "health":
		return health(ctx, args, getenv)
	case "help":
		if len(args) == 1 {
			if _, known := helps[args[0]]; known {
				return printHelp(stdout, args[0])
			}
		}
		return printHelp(stdout, "")
	default:
		return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
	}
}

// wantsHelp reports whether args ask for help (-h, -help or --help before
// any "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help", "--h":
			return true
		}
	}
	return false
}

// printHelp writes the usage of each named command ("" is the overview).
func printHelp(w io.Writer, cmds ...string) error {
	var b strings.Builder
	for i, cmd := range cmds {
		if i > 0 {
			b.WriteString("\n")
		}
		h, ok := helps[cmd]
		if !ok {
			b.WriteString(usage)
			continue
		}
		b.WriteString(h.synopsis + "\n\nflags:\n")
		writeFlags(&b, h.flags())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeFlags lists the flags of fs with their defaults and, for settings,
// their environment variable and YAML key.
func writeFlags(b *strings.Builder, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		var extra []string
		s := settingNamed(f.Name)
		switch {
		case s != nil:
			arg = s.arg
			if f.DefValue != "" {
				extra = append(extra, "default "+f.DefValue)
			}
			extra = append(extra, "env "+envName(s.name), "YAML "+s.key)
		case f.Name == "config":
			arg = "FILE"
			extra = append(extra, "env "+envPrefix+"CONFIG")
		}
		fmt.Fprintf(b, "  --%s", f.Name)
		if arg != "" {
			fmt.Fprintf(b, " %s", arg)
		}
		fmt.Fprintf(b, "\n        %s\n", usage)
		if len(extra) > 0 {
			fmt.Fprintf(b, "        %s\n", strings.Join(extra, "; "))
		}
	})
}

// health asks the server on this host's HTTP address whether it is ready.
func health(ctx context.Context, args []string, getenv func(string) string) error {
	cfg, rest, err := loadSettings("health", []string{"http-addr"}, args, getenv, nil)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("health: unexpected arguments %q", rest)
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
