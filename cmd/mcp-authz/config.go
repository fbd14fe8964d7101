package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/authz/oauth"
	"github.com/mcp-authz/mcp-authz/authz/ratelimit"
	"github.com/mcp-authz/mcp-authz/registry"
)

// envPrefix starts every environment variable the command reads.
const envPrefix = "MCP_AUTHZ_"

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

// rateLimitConfig holds the per-address limits, each "N/m:burst",
// "N/h" or "off"; unset means the built-in default.
type rateLimitConfig struct {
	Register  ratelimit.Limit `yaml:"register"`
	Token     ratelimit.Limit `yaml:"token"`
	Login     ratelimit.Limit `yaml:"login"`
	Authorize ratelimit.Limit `yaml:"authorize"`
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

// setting is one configuration value reachable by flag and environment.
type setting struct {
	name  string // flag name; the variable is MCP_AUTHZ_ + upper snake case
	usage string
	set   func(c *config, v string) error
	get   func(c *config) string
}

func stringSetting(name, usage string, field func(*config) *string) setting {
	return setting{
		name:  name,
		usage: usage,
		set:   func(c *config, v string) error { *field(c) = v; return nil },
		get:   func(c *config) string { return *field(c) },
	}
}

func positiveIntSetting(name, usage string, field func(*config) *int) setting {
	return setting{
		name:  name,
		usage: usage,
		set: func(c *config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return fmt.Errorf("%q is not a positive whole number", v)
			}
			*field(c) = n
			return nil
		},
		get: func(c *config) string { return strconv.Itoa(*field(c)) },
	}
}

func durationSetting(name, usage string, field func(*config) *time.Duration) setting {
	return setting{
		name:  name,
		usage: usage,
		set: func(c *config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return err
			}
			*field(c) = d
			return nil
		},
		get: func(c *config) string { return field(c).String() },
	}
}

func boolSetting(name, usage string, field func(*config) *bool) setting {
	return setting{
		name:  name,
		usage: usage,
		set: func(c *config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return err
			}
			*field(c) = b
			return nil
		},
		get: func(c *config) string { return strconv.FormatBool(*field(c)) },
	}
}

func limitSetting(name, usage string, def ratelimit.Limit,
	field func(*config) *ratelimit.Limit) setting {
	return setting{
		name:  name,
		usage: usage,
		set:   func(c *config, v string) error { return field(c).UnmarshalText([]byte(v)) },
		get: func(c *config) string {
			if l := *field(c); l != (ratelimit.Limit{}) {
				return l.String()
			}
			return def.String()
		},
	}
}

func listSetting(name, usage string, field func(*config) *[]string) setting {
	return setting{
		name:  name,
		usage: usage,
		set:   func(c *config, v string) error { *field(c) = splitList(v); return nil },
		get:   func(c *config) string { return strings.Join(*field(c), ",") },
	}
}

// splitList splits a comma-separated value, dropping empty elements.
func splitList(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// settings lists every flag and environment variable of `serve`.
var settings = []setting{
	stringSetting("data-dir", "data directory of the registry",
		func(c *config) *string { return &c.DataDir }),
	stringSetting("issuer", "issuer URL of the authorization server",
		func(c *config) *string { return &c.Issuer }),
	{
		name:  "resources",
		usage: "comma-separated protected resource URLs (MCP endpoints as clients see them)",
		set: func(c *config, v string) error {
			c.Resources = nil
			for _, u := range splitList(v) {
				c.Resources = append(c.Resources, resourceConfig{URL: u})
			}
			return nil
		},
		get: func(c *config) string {
			var urls []string
			for _, r := range c.Resources {
				urls = append(urls, r.URL)
			}
			return strings.Join(urls, ",")
		},
	},
	stringSetting("http-addr", "listen address of the OAuth endpoints and HTTP check",
		func(c *config) *string { return &c.HTTPAddr }),
	stringSetting("grpc-addr", "listen address of the Envoy ext_authz gRPC service",
		func(c *config) *string { return &c.GRPCAddr }),
	stringSetting("admin-addr", "listen address of the admin API (keep it on loopback)",
		func(c *config) *string { return &c.AdminAddr }),
	stringSetting("metrics-addr", "listen address of the Prometheus /metrics endpoint",
		func(c *config) *string { return &c.MetricsAddr }),
	stringSetting("log-format", "log format: text or json",
		func(c *config) *string { return &c.LogFormat }),
	stringSetting("log-level", "log level: debug, info, warn or error",
		func(c *config) *string { return &c.LogLevel }),
	durationSetting("access-token-ttl", "lifetime of access tokens",
		func(c *config) *time.Duration { return &c.AccessTokenTTL }),
	durationSetting("refresh-token-ttl", "lifetime of refresh tokens",
		func(c *config) *time.Duration { return &c.RefreshTokenTTL }),
	durationSetting("code-ttl", "lifetime of authorization codes",
		func(c *config) *time.Duration { return &c.CodeTTL }),
	positiveIntSetting("snapshot-records", "log records between registry snapshots",
		func(c *config) *int { return &c.SnapshotRecords }),
	stringSetting("registration-mode", "dynamic registration: open, token or closed",
		func(c *config) *string { return &c.Registration.Mode }),
	limitSetting("rate-limit-register", "registrations per client address (N/m:burst or off)",
		oauth.DefaultRegisterLimit,
		func(c *config) *ratelimit.Limit { return &c.RateLimits.Register }),
	limitSetting("rate-limit-token", "token requests per client address (N/m:burst or off)",
		oauth.DefaultTokenLimit,
		func(c *config) *ratelimit.Limit { return &c.RateLimits.Token }),
	limitSetting("rate-limit-login", "login attempts per client address (N/m:burst or off)",
		oauth.DefaultLoginLimit,
		func(c *config) *ratelimit.Limit { return &c.RateLimits.Login }),
	limitSetting("rate-limit-authorize", "authorization page requests per client address",
		oauth.DefaultAuthorizeLimit,
		func(c *config) *ratelimit.Limit { return &c.RateLimits.Authorize }),
	listSetting("trusted-proxies", "CIDR prefixes whose X-Forwarded-For is believed",
		func(c *config) *[]string { return &c.TrustedProxies }),
	boolSetting("dev-mode", "accept unknown client ids (loopback issuer only; never in production)",
		func(c *config) *bool { return &c.Clients.DevMode }),
}

// envName returns the environment variable of a flag name.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// loadConfig builds the effective configuration from, lowest precedence
// first: the defaults, the YAML file named by --config or MCP_AUTHZ_CONFIG,
// MCP_AUTHZ_* variables and flags. extra lets a subcommand add its own flags.
func loadConfig(args []string, getenv func(string) string,
	extra func(fs *flag.FlagSet)) (config, []string, error) {
	fs := flag.NewFlagSet("mcp-authz", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file (env "+envPrefix+"CONFIG)")
	flagValues := map[string]*string{}
	for _, s := range settings {
		flagValues[s.name] = fs.String(s.name, "", s.usage+" (env "+envName(s.name)+")")
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
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
		for _, s := range settings {
			if s.name == f.Name {
				if err := s.set(&cfg, *v); err != nil {
					flagErr = fmt.Errorf("--%s: %w", f.Name, err)
				}
			}
		}
	})
	if flagErr != nil {
		return config{}, nil, flagErr
	}
	cfg.AdminPassword = getenv(envPrefix + "ADMIN_PASSWORD")
	cfg.InitialAccessTokens = splitList(getenv(envPrefix + "INITIAL_ACCESS_TOKENS"))
	return cfg, fs.Args(), cfg.validate()
}

func readConfigFile(path string, cfg *config) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading config file: %w", err)
	}
	defer f.Close()

	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	// An empty file (io.EOF) means all defaults.
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("parsing config file %q: %w", path, err)
	}
	return nil
}

func (c config) validate() error {
	if c.DataDir == "" {
		return errors.New("data directory must not be empty")
	}
	if len(c.Resources) == 0 {
		return errors.New("at least one protected resource is needed")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log format %q: want text or json", c.LogFormat)
	}
	if _, err := c.level(); err != nil {
		return err
	}
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
	if c.SnapshotRecords <= 0 {
		return fmt.Errorf("snapshot records must be positive, got %d", c.SnapshotRecords)
	}
	if _, err := ratelimit.ParsePrefixes(c.TrustedProxies); err != nil {
		return fmt.Errorf("trusted proxies: %w", err)
	}
	return c.authzConfig().Validate()
}

func (c config) level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("log level %q: %w", c.LogLevel, err)
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

// logAttrs states the effective configuration for the startup line. It
// holds no secrets.
func (c config) logAttrs() []any {
	attrs := []any{}
	for _, s := range settings {
		attrs = append(attrs, strings.ReplaceAll(s.name, "-", "_"), s.get(&c))
	}
	return append(attrs,
		"admin_password_from_env", c.AdminPassword != "",
		"initial_access_tokens", len(c.InitialAccessTokens),
		"preregistered_clients", len(c.Clients.StaticClients),
		"client_id_metadata_documents", !c.Clients.DisableCIMD,
		"registration_policy_file_tokens", c.Registration.InitialAccessTokensFile != "")
}

// oauthConfig is the authorization server's configuration.
func (c config) oauthConfig() (oauth.Config, error) {
	proxies, err := ratelimit.ParsePrefixes(c.TrustedProxies)
	if err != nil {
		return oauth.Config{}, fmt.Errorf("trusted proxies: %w", err)
	}
	tokens := c.InitialAccessTokens
	if f := c.Registration.InitialAccessTokensFile; f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			return oauth.Config{}, fmt.Errorf("reading initial access tokens: %w", err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				tokens = append(tokens, line)
			}
		}
	}
	return oauth.Config{
		Config:     c.authzConfig(),
		CodeTTL:    c.CodeTTL,
		RefreshTTL: c.RefreshTokenTTL,
		Registration: oauth.RegistrationPolicy{
			Mode:                c.Registration.Mode,
			InitialAccessTokens: tokens,
			AllowRedirectHosts:  c.Registration.AllowRedirectHosts,
			DenyRedirectHosts:   c.Registration.DenyRedirectHosts,
			MaxBodyBytes:        c.Registration.MaxBodyBytes,
			MaxRedirectURIs:     c.Registration.MaxRedirectURIs,
		},
		RateLimits: oauth.RateLimits{
			Register:  c.RateLimits.Register,
			Token:     c.RateLimits.Token,
			Login:     c.RateLimits.Login,
			Authorize: c.RateLimits.Authorize,
		},
		TrustedProxies: proxies,
		ClientSources:  c.Clients,
	}, nil
}
