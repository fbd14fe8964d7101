package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-authz/mcp-authz/authz/ratelimit"
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
			name: "bare boolean flag",
			args: []string{"--dev-mode"},
			want: func(c *config) { c.Clients.DevMode = true },
		},
		{
			name: "boolean flag with its value as the next word",
			args: []string{"--dev-mode", "true"},
			want: func(c *config) { c.Clients.DevMode = true },
		},
		{
			name: "boolean flag turned off over env",
			args: []string{"--dev-mode=false"},
			env:  map[string]string{"MCP_AUTHZ_DEV_MODE": "true"},
			want: func(*config) {},
		},
		{
			name: "boolean env",
			env:  map[string]string{"MCP_AUTHZ_DEV_MODE": "1"},
			want: func(c *config) { c.Clients.DevMode = true },
		},
		{
			name: "rate limit kept as written",
			args: []string{"--rate-limit-register", " 1/h:3"},
			want: func(c *config) {
				c.RateLimits.Register = writtenLimit{
					Limit: ratelimit.Limit{PerMinute: 1.0 / 60, Burst: 3}, Text: "1/h:3",
				}
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
		{"bad duration env", nil, map[string]string{"MCP_AUTHZ_CODE_TTL": "soon"},
			"MCP_AUTHZ_CODE_TTL"},
		{"bad log format", []string{"--log-format", "xml"}, nil, "log format"},
		{"zero snapshot records", nil, map[string]string{"MCP_AUTHZ_SNAPSHOT_RECORDS": "0"},
			"MCP_AUTHZ_SNAPSHOT_RECORDS"},
		{"snapshot records not a number", []string{"--snapshot-records", "1e6"}, nil,
			"snapshot-records"},
		{"negative ttl", []string{"--access-token-ttl", "-1s"}, nil, "access token ttl"},
		{"relative issuer", []string{"--issuer", "localhost"}, nil, "issuer"},
		{"no resources", []string{"--resources", " , "}, nil, "resource"},
		{"issuer with a trailing slash", []string{"--issuer", "http://localhost:9000/"}, nil,
			`write it as "http://localhost:9000"`},
		{"long-lived codes", []string{"--code-ttl", "1000h"}, nil, "above the maximum of 10m"},
		{"codes just too long", nil, map[string]string{"MCP_AUTHZ_CODE_TTL": "10m1s"},
			"code ttl"},
		{"unknown registration mode", []string{"--registration-mode", "maybe"}, nil,
			"want open, token or closed"},
		{"token mode without tokens", []string{"--registration-mode", "token"}, nil,
			"MCP_AUTHZ_INITIAL_ACCESS_TOKENS"},
		{"dev mode on a public issuer",
			[]string{"--dev-mode", "--issuer", "https://mcp.example.com"}, nil, "loopback issuer"},
		{"port without host", []string{"--http-addr", "9000"}, nil,
			`http address: "9000": want HOST:PORT`},
		{"port out of range", []string{"--metrics-addr", "nope:99999"}, nil,
			"metrics address"},
		{"named port", nil, map[string]string{"MCP_AUTHZ_GRPC_ADDR": ":grpc"}, "grpc address"},
		{"unknown log level", []string{"--log-level", "loud"}, nil,
			`log level "loud": want debug, info, warn or error`},
		{"boolean flag with a word that is no bool", []string{"--dev-mode", "yes"}, nil, ""},
		{"bad boolean env", nil, map[string]string{"MCP_AUTHZ_DEV_MODE": "yes"},
			`MCP_AUTHZ_DEV_MODE: "yes" is not true or false`},
		{"unknown flag", []string{"--no-such-flag"}, nil, "see mcp-authz serve -h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rest, err := loadConfig(tt.args, func(k string) string { return tt.env[k] }, nil)
			if tt.want == "" {
				// The word is left as an argument, which serve refuses.
				if err != nil || len(rest) != 1 {
					t.Fatalf("loadConfig = %q, %v; want the word back as an argument", rest, err)
				}
				return
			}
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

// TestConfigFileErrorsNameKeys checks that a file with mistakes is refused
// with messages that name the YAML keys and lines, not Go types.
func TestConfigFileErrorsNameKeys(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown top-level key", "issuer: http://localhost:1\nfoo: 1\n",
			[]string{"line 2: unknown key foo"}},
		{"unknown nested key", "registration:\n  mode: open\n  bogus: 1\n",
			[]string{"line 3: unknown key registration.bogus"}},
		{"unknown key in a list item", "resources:\n  - url: http://a/mcp\n    scope: [x]\n",
			[]string{"line 3: unknown key resources[0].scope"}},
		{"unknown key of a pre-registered client", "clients:\n  - id: a\n    nme: x\n",
			[]string{"line 3: unknown key clients[0].nme"}},
		{"list for a single value", "issuer: [a, b]\n",
			[]string{"line 1: issuer: got a list, want a single value"}},
		{"word for a number", "registration:\n  max_body_bytes: lots\n",
			[]string{`line 2: registration.max_body_bytes: got "lots", want a whole number`}},
		{"bad duration", "code_ttl: 10x\n",
			[]string{`code_ttl: got "10x", want a duration such as 90s`}},
		{"bad rate limit", "rate_limits: {register: 1/x}\n",
			[]string{"rate_limits.register", "unit must be s, m or h"}},
		{"mapping for the resources", "resources: {url: http://a/mcp}\n",
			[]string{"resources: got a mapping of keys, want a list"}},
		{"text for a list", "trusted_proxies: 10.0.0.0/8\n",
			[]string{`trusted_proxies: got "10.0.0.0/8", want a list`}},
		{"list at the top", "- a\n", []string{"want keys such as issuer"}},
		{"every problem at once", "foo: 1\ncode_ttl: x\n",
			[]string{"unknown key foo", "code_ttl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(file, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := loadConfig([]string{"--config", file}, noEnv, nil)
			if err == nil {
				t.Fatal("the file was accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, goName := range []string{"main.", "[]", "oauth.", "int64", "unmarshal"} {
				if strings.Contains(err.Error(), goName) {
					t.Errorf("error %q speaks of Go types (%s)", err, goName)
				}
			}
		})
	}
}

func noEnv(string) string { return "" }

// TestResourcesInFile checks the forms a file may give resources in.
func TestResourcesInFile(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []resourceConfig
	}{
		{"one string", "resources: http://a/mcp\n", []resourceConfig{{URL: "http://a/mcp"}}},
		{"comma-separated string", "resources: 'http://a/mcp, http://b/x'\n",
			[]resourceConfig{{URL: "http://a/mcp"}, {URL: "http://b/x"}}},
		{"list of URLs and mappings",
			"resources:\n  - http://a/mcp\n  - url: http://b/x\n    scopes: [s]\n",
			[]resourceConfig{{URL: "http://a/mcp"}, {URL: "http://b/x", Scopes: []string{"s"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(file, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, _, err := loadConfig([]string{"--config", file}, noEnv, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, cfg.Resources); diff != "" {
				t.Errorf("resources (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEverySettingHasItsYAMLKey writes each setting's non-default value
// under the YAML key the help names, and finds it read.
func TestEverySettingHasItsYAMLKey(t *testing.T) {
	values := map[string]string{
		"resources": "http://a/mcp", "issuer": "http://127.0.0.1:1", "dev-mode": "true",
		"trusted-proxies": "10.0.0.0/8", "snapshot-records": "7", "registration-mode": "closed",
		"log-format": "json", "log-level": "debug",
	}
	for _, s := range settings {
		t.Run(s.name, func(t *testing.T) {
			v, ok := values[s.name]
			switch {
			case ok:
			case strings.HasSuffix(s.name, "-ttl"):
				v = "3m"
			case strings.HasPrefix(s.name, "rate-limit-"):
				v = "7/h:2"
			case strings.HasSuffix(s.name, "-addr"):
				v = "127.0.0.1:7"
			default:
				v = "/some/" + s.name
			}
			var y strings.Builder
			parts := strings.Split(s.key, ".")
			for i, p := range parts[:len(parts)-1] {
				y.WriteString(strings.Repeat("  ", i) + p + ":\n")
			}
			yv := v
			if s.name == "trusted-proxies" {
				yv = "[" + v + "]"
			}
			y.WriteString(strings.Repeat("  ", len(parts)-1) + parts[len(parts)-1] + ": " +
				yv + "\n")
			file := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(file, []byte(y.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			fromFile, _, err := loadConfig([]string{"--config", file}, noEnv, nil)
			if err != nil {
				t.Fatalf("%s: %v", y.String(), err)
			}
			fromFlag, _, err := loadConfig([]string{"--" + s.name + "=" + v}, noEnv, nil)
			if err != nil {
				t.Fatal(err)
			}
			def := defaultConfig()
			if got := s.get(&fromFile); got != s.get(&fromFlag) || got == s.get(&def) {
				t.Errorf("YAML %s = %q gives %q; the flag gives %q, the default is %q",
					s.key, v, got, s.get(&fromFlag), s.get(&def))
			}
		})
	}
}

// TestStartLine checks the start line in JSON: numbers and bools as such,
// durations and rate limits as written, and the real count of initial
// access tokens, from the variable and the file.
func TestStartLine(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	err := os.WriteFile(tokens, []byte("# comment\n"+strings.Repeat("a", 32)+"\n\n"+
		strings.Repeat("b", 32)+"\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "c.yaml")
	err = os.WriteFile(file, []byte("registration:\n  mode: token\n"+
		"  initial_access_tokens_file: "+tokens+"\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MCP_AUTHZ_INITIAL_ACCESS_TOKENS": strings.Repeat("c", 32)}
	cfg, _, err := loadConfig([]string{"--config", file, "--dev-mode", "--code-ttl", "10m",
		"--rate-limit-login", "1/h:3", "--log-format", "json"},
		func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.readFiles(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	logger, err := newLogger(cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("mcp-authz starting", cfg.logAttrs(false)...)
	logger.Info("other", "ttl", 90*time.Second)
	var line, other map[string]any
	dec := json.NewDecoder(&out)
	if err := dec.Decode(&line); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&other); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"snapshot_records": float64(1000000), "dev_mode": true, "code_ttl": "10m0s",
		"rate_limit_login": "1/h:3", "initial_access_tokens": float64(3),
		"initial_access_tokens_file": tokens, "repair": false,
		"admin_password_from_env": false, "client_id_metadata_documents": true,
		"preregistered_clients": float64(0),
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %#v, want %#v", k, line[k], v)
		}
	}
	if other["ttl"] != "1m30s" {
		t.Errorf("a duration in another line is %#v, want \"1m30s\"", other["ttl"])
	}
}

func TestReadFiles(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("# only a comment\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file, want string
	}{
		{"missing file", filepath.Join(dir, "nope"), "reading initial access tokens"},
		{"no token in the file", empty, "holds no token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.Registration.InitialAccessTokensFile = tt.file
			if err := cfg.readFiles(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("readFiles = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		set  func(c *config)
		want []string
	}{
		{"defaults", func(*config) {}, nil},
		{"every address trusted", func(c *config) {
			c.TrustedProxies = []string{"10.0.0.0/8", "0.0.0.0/0", "::/0"}
		}, []string{"0.0.0.0/0", "::/0"}},
		{"dev mode on every interface", func(c *config) {
			c.Clients.DevMode = true
			c.GRPCAddr = "127.0.0.1:9001"
		}, []string{"http listener (:9000)"}},
		{"dev mode on loopback", func(c *config) {
			c.Clients.DevMode = true
			c.HTTPAddr, c.GRPCAddr = "127.0.0.1:9000", "[::1]:9001"
		}, nil},
		{"admin API beyond loopback", func(c *config) { c.AdminAddr = ":9002" },
			[]string{"admin API"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig()
			tt.set(&cfg)
			got := cfg.warnings()
			if len(got) != len(tt.want) {
				t.Fatalf("warnings %q, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %q does not mention %q", got[i], w)
				}
			}
		})
	}
}

// TestLimitsEchoedAsWritten checks that the start line shows a rate limit
// as given, and the built-in default when none is.
func TestLimitsEchoedAsWritten(t *testing.T) {
	cfg, _, err := loadConfig([]string{"--rate-limit-token", "2/s"}, func(k string) string {
		return map[string]string{"MCP_AUTHZ_RATE_LIMIT_REGISTER": "1/h:3"}[k]
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	attrs := slog.Group("", cfg.logAttrs(false)...).Value.Group()
	got := map[string]string{}
	for _, a := range attrs {
		got[a.Key] = a.Value.String()
	}
	want := map[string]string{
		"rate_limit_register": "1/h:3", "rate_limit_token": "2/s",
		"rate_limit_login": "10/m:10", "rate_limit_authorize": "60/m:120",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// TestREADMEConfigTable checks that the README's table names each setting
// with its flag, variable and YAML key, as the help does.
func TestREADMEConfigTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		row := fmt.Sprintf("| `--%s` | `%s` | `%s`", s.name, envName(s.name), s.key)
		if !strings.Contains(string(readme), row) {
			t.Errorf("README has no row starting %s", row)
		}
	}
}
