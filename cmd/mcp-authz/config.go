package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/authz/oauth"
	"github.com/mcp-authz/mcp-authz/authz/ratelimit"
	"github.com/mcp-authz/mcp-authz/registry"
)

// envPrefix starts every environment variable the command reads.
const envPrefix = "MCP_AUTHZ_"

// maxCodeTTL bounds the lifetime of authorization codes: OAuth 2.1 wants
// them short-lived, and a client redeems its code within seconds.
const maxCodeTTL = 10 * time.Minute

// resourceConfig is one protected resource in the configuration file.
type resourceConfig struct {
	URL            string            `yaml:"url"`
	Scopes         []string          `yaml:"scopes"`
	RequiredScopes []string          `yaml:"required_scopes"`
	Rules          []authz.ScopeRule `yaml:"rules"`
}

// registrationConfig is the dynamic registration policy in the file.
type registrationConfig struct {
	Mode               string   `yaml:"mode"`
	AllowRedirectHosts []string `yaml:"allow_redirect_hosts"`
	DenyRedirectHosts  []string `yaml:"deny_redirect_hosts"`
	MaxBodyBytes       int64    `yaml:"max_body_bytes"`
	MaxRedirectURIs    int      `yaml:"max_redirect_uris"`
	// InitialAccessTokensFile names a file with one initial access token
	// per line (mode "token"); MCP_AUTHZ_INITIAL_ACCESS_TOKENS adds more.
	InitialAccessTokensFile string `yaml:"initial_access_tokens_file"`
}

// writtenLimit is a rate limit together with the text it was written as,
// so that the start line echoes "1/h:3" rather than its per-minute form.
type writtenLimit struct {
	Limit ratelimit.Limit
	Text  string
}

// UnmarshalText reads a limit as ratelimit.ParseLimit does and keeps the
// text, so a writtenLimit can be a YAML scalar.
func (w *writtenLimit) UnmarshalText(b []byte) error {
	l, err := ratelimit.ParseLimit(string(b))
	if err != nil {
		return err
	}
	*w = writtenLimit{Limit: l, Text: strings.TrimSpace(string(b))}
	return nil
}

// rateLimitConfig holds the per-address limits, each COUNT/UNIT[:BURST]
// or "off"; unset means the built-in default.
type rateLimitConfig struct {
	Register  writtenLimit `yaml:"register"`
	Token     writtenLimit `yaml:"token"`
	Login     writtenLimit `yaml:"login"`
	Authorize writtenLimit `yaml:"authorize"`
}

// config is the effective configuration of `mcp-authz serve`.
type config struct {
	DataDir         string           `yaml:"data_dir"`
	Issuer          string           `yaml:"issuer"`
	Resources       []resourceConfig `yaml:"resources"`
	HTTPAddr        string           `yaml:"http_addr"`
	GRPCAddr        string           `yaml:"grpc_addr"`
	AdminAddr       string           `yaml:"admin_addr"`
	MetricsAddr     string           `yaml:"metrics_addr"`
	LogFormat       string           `yaml:"log_format"`
	LogLevel        string           `yaml:"log_level"`
	AccessTokenTTL  time.Duration    `yaml:"access_token_ttl"`
	RefreshTokenTTL time.Duration    `yaml:"refresh_token_ttl"`
	CodeTTL         time.Duration    `yaml:"code_ttl"`
	// SnapshotRecords is the number of log records after which the
	// registry writes a snapshot (it also does after 256 MiB of log).
	SnapshotRecords int `yaml:"snapshot_records"`

	Registration registrationConfig `yaml:"registration"`
	RateLimits   rateLimitConfig    `yaml:"rate_limits"`
	// TrustedProxies may name the client address in X-Forwarded-For for
	// rate limits and lockouts (CIDR prefixes).
	TrustedProxies []string `yaml:"trusted_proxies"`

	// Clients holds pre-registered clients, the client ID metadata
	// document settings and development mode.
	Clients oauth.ClientSources `yaml:",inline"`

	// AdminPassword and InitialAccessTokens come from the environment
	// only, never from a flag that would show in a process listing.
	// readFiles adds the tokens of Registration.InitialAccessTokensFile.
	AdminPassword       string   `yaml:"-"`
	InitialAccessTokens []string `yaml:"-"`
}

// defaultConfig is the zero-configuration demo: mcp-authz on :9000/:9001
// in front of an MCP server that Envoy exposes at localhost:8080/mcp.
func defaultConfig() config {
	return config{
		DataDir:         "./data",
		Issuer:          "http://localhost:9000",
		Resources:       []resourceConfig{{URL: "http://localhost:8080/mcp"}},
		HTTPAddr:        ":9000",
		GRPCAddr:        ":9001",
		AdminAddr:       "127.0.0.1:9002",
		MetricsAddr:     ":9090",
		LogFormat:       "text",
		LogLevel:        "info",
		AccessTokenTTL:  time.Hour,
		RefreshTokenTTL: 30 * 24 * time.Hour,
		CodeTTL:         2 * time.Minute,
		SnapshotRecords: registry.DefaultSnapshotRecords,
		Registration:    registrationConfig{Mode: oauth.RegistrationOpen},
		// A sidecar or local Envoy forwards from loopback.
		TrustedProxies: []string{"127.0.0.0/8", "::1/128"},
	}
}

// loadConfig builds the effective configuration of `serve` from, lowest
// precedence first: the defaults, the YAML file named by --config or
// MCP_AUTHZ_CONFIG, MCP_AUTHZ_* variables and flags, and validates it
// without reading other files (see readFiles). Flags may come before or
// after other arguments, which it returns. extra lets a command add its own
// flags.
func loadConfig(args []string, getenv func(string) string,
	extra func(fs *flag.FlagSet)) (config, []string, error) {
	cfg, rest, err := loadSettings("serve", nil, args, getenv, extra)
	if err != nil {
		return config{}, nil, err
	}
	return cfg, rest, cfg.validate()
}

// loadSettings builds a configuration as loadConfig does from the named
// settings only (every one when names is nil), without validating it. The
// other settings keep their defaults or the file's values.
func loadSettings(cmd string, names []string, args []string, getenv func(string) string,
	extra func(fs *flag.FlagSet)) (config, []string, error) {
	fs, configPath, flagValues := commandFlags(cmd, names)
	if extra != nil {
		extra(fs)
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return config{}, nil, err
	}

	cfg := defaultConfig()
	path := *configPath
	if path == "" {
		path = getenv(envPrefix + "CONFIG")
	}
	if path != "" {
		if err := readConfigFile(path, &cfg); err != nil {
			return config{}, nil, err
		}
	}

	for _, s := range settings {
		if _, ok := flagValues[s.name]; !ok {
			continue
		}
		if v := getenv(envName(s.name)); v != "" {
			if err := s.set(&cfg, v); err != nil {
				return config{}, nil, fmt.Errorf("%s: %w", envName(s.name), err)
			}
		}
	}
	var flagErr error
	fs.Visit(func(f *flag.Flag) {
		v, ok := flagValues[f.Name]
		if !ok || flagErr != nil {
			return
		}
		if err := settingNamed(f.Name).set(&cfg, v.text); err != nil {
			flagErr = fmt.Errorf("--%s: %w", f.Name, err)
		}
	})
	if flagErr != nil {
		return config{}, nil, flagErr
	}
	cfg.AdminPassword = getenv(envPrefix + "ADMIN_PASSWORD")
	cfg.InitialAccessTokens = splitList(getenv(envPrefix + "INITIAL_ACCESS_TOKENS"))
	return cfg, rest, nil
}

// validate checks everything that can be checked without reading files or
// opening the data directory.
func (c config) validate() error {
	if c.DataDir == "" {
		return errors.New("data directory must not be empty")
	}
	if len(c.Resources) == 0 {
		return errors.New("at least one protected resource is needed")
	}
	if strings.HasSuffix(c.Issuer, "/") {
		return fmt.Errorf("issuer %q ends with a slash: the issuer in the metadata must "+
			"match exactly what clients expect, so write it as %q",
			c.Issuer, strings.TrimRight(c.Issuer, "/"))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log format %q: want text or json", c.LogFormat)
	}
	if _, err := c.level(); err != nil {
		return err
	}
	for _, a := range c.listeners() {
		if err := checkListenAddr(a.addr); err != nil {
			return fmt.Errorf("%s address: %w", a.name, err)
		}
	}
	if err := c.validateTTLs(); err != nil {
		return err
	}
	if c.SnapshotRecords <= 0 {
		return fmt.Errorf("snapshot records must be positive, got %d", c.SnapshotRecords)
	}
	if _, err := ratelimit.ParsePrefixes(c.TrustedProxies); err != nil {
		return fmt.Errorf("trusted proxies: %w", err)
	}
	if err := c.validateRegistration(); err != nil {
		return err
	}
	if c.Clients.DevMode {
		// Checked here too, so that it stops serve before the data
		// directory is opened.
		if u, err := url.Parse(c.Issuer); err == nil {
			if err := oauth.CheckDevModeIssuer(u.Hostname()); err != nil {
				return err
			}
		}
	}
	return c.authzConfig().Validate()
}

func (c config) validateTTLs() error {
	for _, ttl := range []struct {
		name string
		d    time.Duration
	}{
		{"access token ttl", c.AccessTokenTTL}, {"refresh token ttl", c.RefreshTokenTTL},
		{"code ttl", c.CodeTTL},
	} {
		if ttl.d <= 0 {
			return fmt.Errorf("%s must be positive, got %s", ttl.name, ttl.d)
		}
	}
	if c.CodeTTL > maxCodeTTL {
		return fmt.Errorf("code ttl %s is above the maximum of %s: authorization codes "+
			"must be short-lived (OAuth 2.1)", c.CodeTTL, maxCodeTTL)
	}
	return nil
}

func (c config) validateRegistration() error {
	switch c.Registration.Mode {
	case oauth.RegistrationOpen, oauth.RegistrationClosed:
	case oauth.RegistrationToken:
		if len(c.InitialAccessTokens) == 0 && c.Registration.InitialAccessTokensFile == "" {
			return errors.New("registration mode token needs initial access tokens: set " +
				envPrefix + "INITIAL_ACCESS_TOKENS or registration.initial_access_tokens_file")
		}
	default:
		return fmt.Errorf("registration mode %q: want open, token or closed",
			c.Registration.Mode)
	}
	return nil
}

// readFiles reads the files the configuration names and checks what they
// hold: the initial access tokens file. serve calls it before the data
// directory is opened.
func (c *config) readFiles() error {
	f := c.Registration.InitialAccessTokensFile
	if f == "" {
		return nil
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return fmt.Errorf("reading initial access tokens: %w", err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			c.InitialAccessTokens = append(c.InitialAccessTokens, line)
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("initial access tokens file %s holds no token", f)
	}
	return nil
}

// listener is a named listen address of serve.
type listener struct{ name, addr string }

func (c config) listeners() []listener {
	return []listener{
		{"http", c.HTTPAddr}, {"grpc", c.GRPCAddr},
		{"admin", c.AdminAddr}, {"metrics", c.MetricsAddr},
	}
}

// checkListenAddr checks that addr is HOST:PORT with a port number (0 for
// any free port). The host is not resolved.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want HOST:PORT, such as \":9000\" or \"127.0.0.1:9000\"", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	return nil
}

// loopbackAddr reports whether a listen address binds loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && oauth.IsLoopbackHost(host)
}

// warnings are the settings that are accepted but worth a warning at start.
func (c config) warnings() []string {
	var out []string
	if !loopbackAddr(c.AdminAddr) {
		out = append(out, fmt.Sprintf("the admin API listens beyond loopback (%s); it is "+
			"protected only by the token in the data directory", c.AdminAddr))
	}
	proxies, _ := ratelimit.ParsePrefixes(c.TrustedProxies)
	for _, p := range proxies {
		if p.Bits() == 0 {
			out = append(out, fmt.Sprintf("trusted proxies include %s: any peer can name "+
				"the client address that rate limits and lockouts see", p))
		}
	}
	if c.Clients.DevMode {
		for _, l := range c.listeners()[:2] {
			if !loopbackAddr(l.addr) {
				out = append(out, fmt.Sprintf("dev mode is on and the %s listener (%s) "+
					"is reachable from other hosts; bind it to 127.0.0.1", l.name, l.addr))
			}
		}
	}
	return out
}

func (c config) level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// authzConfig is the part of the configuration the authz packages take,
// with authz's defaults and normalisation applied.
func (c config) authzConfig() authz.Config {
	ac := authz.Config{Issuer: c.Issuer, AccessTokenTTL: c.AccessTokenTTL}
	for _, r := range c.Resources {
		ac.Resources = append(ac.Resources, authz.Resource{
			URL: r.URL, Scopes: r.Scopes, RequiredScopes: r.RequiredScopes, Rules: r.Rules,
		})
	}
	return ac.WithDefaults()
}

// logAttrs states the effective configuration for the startup line: each
// setting under its YAML key with underscores for dots (numbers and bools as
// such, durations as text like 10m0s), then what has no flag. It holds no
// secrets, only whether they are set and how many.
func (c config) logAttrs(repair bool) []any {
	attrs := []any{}
	for _, s := range settings {
		attrs = append(attrs, strings.ReplaceAll(s.name, "-", "_"), s.value(&c))
	}
	return append(attrs,
		"repair", repair,
		"admin_password_from_env", c.AdminPassword != "",
		"initial_access_tokens", len(c.InitialAccessTokens),
		"initial_access_tokens_file", c.Registration.InitialAccessTokensFile,
		"preregistered_clients", len(c.Clients.StaticClients),
		"client_id_metadata_documents", !c.Clients.DisableCIMD)
}

// oauthConfig is the authorization server's configuration. Call readFiles
// first, so that it holds the tokens of the initial access tokens file.
func (c config) oauthConfig() (oauth.Config, error) {
	proxies, err := ratelimit.ParsePrefixes(c.TrustedProxies)
	if err != nil {
		return oauth.Config{}, fmt.Errorf("trusted proxies: %w", err)
	}
	return oauth.Config{
		Config:     c.authzConfig(),
		CodeTTL:    c.CodeTTL,
		RefreshTTL: c.RefreshTokenTTL,
		Registration: oauth.RegistrationPolicy{
			Mode:                c.Registration.Mode,
			InitialAccessTokens: c.InitialAccessTokens,
			AllowRedirectHosts:  c.Registration.AllowRedirectHosts,
			DenyRedirectHosts:   c.Registration.DenyRedirectHosts,
			MaxBodyBytes:        c.Registration.MaxBodyBytes,
			MaxRedirectURIs:     c.Registration.MaxRedirectURIs,
		},
		RateLimits: oauth.RateLimits{
			Register:  c.RateLimits.Register.Limit,
			Token:     c.RateLimits.Token.Limit,
			Login:     c.RateLimits.Login.Limit,
			Authorize: c.RateLimits.Authorize.Limit,
		},
		TrustedProxies: proxies,
		ClientSources:  c.Clients,
	}, nil
}
