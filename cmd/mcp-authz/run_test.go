package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/internal/syncbuf"
)

// result is what a command line did.
type result struct {
	stdout, stderr string
	err            error
}

// runLine runs a command line in process with the given environment and
// standard input. A command that has not returned after 20 seconds (a
// server that started although it should not have) is stopped.
func runLine(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	err := run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(stdin),
		&stdout, &stderr)
	return result{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

func TestHelp(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{
		{"long flag alone", []string{"--help"},
			[]string{"commands:", "users set-password NAME", "--data-dir DIR",
				"default ./data", "env MCP_AUTHZ_DATA_DIR", "YAML data_dir"}, nil},
		{"short flag alone", []string{"-h"}, []string{"commands:", "--issuer URL"}, nil},
		{"serve", []string{"serve", "-h"},
			[]string{"usage: mcp-authz [serve]", "default 2m0s", "default 10/m:20",
				"--dev-mode\n", "--repair\n", "YAML registration.mode", "default :9000"},
			[]string{"commands:"}},
		{"serve after other flags", []string{"serve", "--issuer", "x", "--help"},
			[]string{"usage: mcp-authz [serve]"}, nil},
		{"clients", []string{"clients", "--help"},
			[]string{"usage: mcp-authz clients", "--data-dir DIR", "--config FILE"},
			[]string{"--issuer", "--http-addr"}},
		{"clients after the verb", []string{"clients", "list", "-h"},
			[]string{"usage: mcp-authz clients"}, nil},
		{"data", []string{"data", "--help"},
			[]string{"usage: mcp-authz data", "--data-dir DIR"}, []string{"--issuer"}},
		{"users", []string{"users", "-h"},
			[]string{"set-password NAME", "--generate", "MCP_AUTHZ_NEW_PASSWORD"},
			[]string{"--issuer"}},
		{"health", []string{"health", "-h"}, []string{"--http-addr ADDR"},
			[]string{"--data-dir"}},
		{"help", []string{"help"},
			[]string{"commands:", "users set-password NAME", "except --repair"},
			[]string{"--data-dir DIR"}},
		{"help of a command", []string{"help", "users"}, []string{"--generate"},
			[]string{"commands:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runLine(t, nil, "", tt.args...)
			if r.err != nil {
				t.Fatalf("mcp-authz %q: %v", tt.args, r.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("help does not contain %q:\n%s", w, r.stdout)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(r.stdout, w) {
					t.Errorf("help contains %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}

// TestHelpNamesEverySetting checks the claim of `mcp-authz help`: each
// flag of serve but --repair and --config has a variable and a YAML key.
func TestHelpNamesEverySetting(t *testing.T) {
	r := runLine(t, nil, "", "serve", "--help")
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, s := range settings {
		want := "--" + s.name
		if !s.isBool {
			want += " " + s.arg
		}
		i := strings.Index(r.stdout, want+"\n")
		if i < 0 {
			t.Errorf("serve -h does not list %s", want)
			continue
		}
		entry, _, _ := strings.Cut(r.stdout[i:], "\n  --")
		for _, w := range []string{"env " + envName(s.name), "YAML " + s.key} {
			if !strings.Contains(entry, w) {
				t.Errorf("serve -h entry %q does not name %q", entry, w)
			}
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	r := runLine(t, nil, "", "frobnicate")
	if r.err == nil || !strings.Contains(r.err.Error(), `unknown command "frobnicate"`) {
		t.Fatalf("error %v", r.err)
	}
}
