package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mcp-authz.yaml")
	yaml := "data_dir: /from/file\nissuer: https://file.example\n" +
		"http_addr: \":7000\"\naccess_token_ttl: 10m\n" +
		"resources:\n  - url: https://file.example/mcp\n    scopes: [mcp:read, mcp:write]\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(c *config)
	}{
		{
			name: "defaults",
			want: func(*config) {},
		},
		{
			name: "file over defaults",
			args: []string{"--config", file},
			want: func(c *config) {
				c.DataDir, c.Issuer, c.HTTPAddr = "/from/file", "https://file.example", ":7000"
				c.AccessTokenTTL = 10 * time.Minute
				c.Resources = []resourceConfig{{
					URL: "https://file.example/mcp", Scopes: []string{"mcp:read", "mcp:write"},
				}}
			},
		},
		{
			name: "env over file",
			env: map[string]string{
				"MCP_AUTHZ_CONFIG": file, "MCP_AUTHZ_DATA_DIR": "/from/env",
				"MCP_AUTHZ_ADMIN_PASSWORD": "pw",
			},
			want: func(c *config) {
				c.DataDir, c.Issuer, c.HTTPAddr = "/from/env", "https://file.example", ":7000"
				c.AccessTokenTTL = 10 * time.Minute
				c.Resources = []resourceConfig{{
					URL: "https://file.example/mcp", Scopes: []string{"mcp:read", "mcp:write"},
				}}
				c.AdminPassword = "pw"
			},
		},
		{
			name: "flags over env",
			args: []string{"--data-dir", "/from/flag", "--resources", "http://a/mcp, http://b/x",
				"--snapshot-records", "5000"},
			env: map[string]string{"MCP_AUTHZ_DATA_DIR": "/from/env",
				"MCP_AUTHZ_SNAPSHOT_RECORDS": "7"},
			want: func(c *config) {
				c.DataDir = "/from/flag"
				c.SnapshotRecords = 5000
				c.Resources = []resourceConfig{{URL: "http://a/mcp"}, {URL: "http://b/x"}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := loadConfig(tt.args, func(k string) string { return tt.env[k] }, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := defaultConfig()
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("no_such_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown file key", []string{"--config", bad}, nil, "no_such_key"},
		{"missing file", []string{"--config", filepath.Join(dir, "nope")}, nil, "reading config"},
		{"bad duration env", nil, map[string]string{"MCP_AUTHZ_CODE_TTL": "soon"}, "MCP_AUTHZ_CODE_TTL"},
		{"bad log format", []string{"--log-format", "xml"}, nil, "log format"},
		{"zero snapshot records", nil, map[string]string{"MCP_AUTHZ_SNAPSHOT_RECORDS": "0"},
			"MCP_AUTHZ_SNAPSHOT_RECORDS"},
		{"snapshot records not a number", []string{"--snapshot-records", "1e6"}, nil,
			"snapshot-records"},
		{"negative ttl", []string{"--access-token-ttl", "-1s"}, nil, "access token ttl"},
		{"relative issuer", []string{"--issuer", "localhost"}, nil, "issuer"},
		{"no resources", []string{"--resources", " , "}, nil, "resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := loadConfig(tt.args, func(k string) string { return tt.env[k] }, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestLogAttrsHoldNoSecret(t *testing.T) {
	cfg := defaultConfig()
	cfg.AdminPassword = "very-secret-password"
	for _, a := range cfg.logAttrs(false) {
		if s, ok := a.(string); ok && strings.Contains(s, cfg.AdminPassword) {
			t.Fatalf("startup attributes contain the admin password")
		}
	}
}

// TestREADMEConfigExample loads the configuration file shown in the README,
// so the documentation cannot drift from the keys the program reads.
func TestREADMEConfigExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "A configuration file with everything")
	if !ok {
		t.Fatal("README lost its configuration example")
	}
	_, rest, _ = strings.Cut(rest, "```yaml\n")
	example, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("README configuration example is not a closed yaml block")
	}
	file := filepath.Join(t.TempDir(), "example.yaml")
	if err := os.WriteFile(file, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := loadConfig([]string{"--config", file}, func(string) string { return "" }, nil)
	if err != nil {
		t.Fatalf("README example does not load: %v", err)
	}
	if len(cfg.Resources) != 1 || len(cfg.Resources[0].Rules) != 2 ||
		len(cfg.Clients.StaticClients) != 1 || cfg.Clients.CIMD.Seed == nil {
		t.Errorf("README example lost parts on the way: %+v", cfg)
	}
	if _, err := cfg.oauthConfig(); err != nil {
		t.Errorf("README example makes no oauth config: %v", err)
	}
}
