package main

import (
	"encoding"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
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

// setting is one configuration value reachable by flag, environment
// variable and YAML key.
type setting struct {
	name   string // flag name; the variable is MCP_AUTHZ_ + upper snake case
	key    string // YAML key, dotted when nested
	arg    string // placeholder of the value in the help text
	usage  string
	isBool bool
	set    func(c *config, v string) error
	get    func(c *config) string // as a flag would be written
	value  func(c *config) any    // for the start line: number, bool or text
}

func stringSetting(name, key, arg, usage string, field func(*config) *string) setting {
	return setting{
		name: name, key: key, arg: arg, usage: usage,
		set:   func(c *config, v string) error { *field(c) = v; return nil },
		get:   func(c *config) string { return *field(c) },
		value: func(c *config) any { return *field(c) },
	}
}

func positiveIntSetting(name, key, usage string, field func(*config) *int) setting {
	return setting{
		name: name, key: key, arg: "N", usage: usage,
		set: func(c *config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return fmt.Errorf("%q is not a positive whole number", v)
			}
			*field(c) = n
			return nil
		},
		get:   func(c *config) string { return strconv.Itoa(*field(c)) },
		value: func(c *config) any { return *field(c) },
	}
}

func durationSetting(name, key, usage string, field func(*config) *time.Duration) setting {
	return setting{
		name: name, key: key, arg: "DURATION", usage: usage,
		set: func(c *config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%q is not a duration such as 90s, 10m or 720h", v)
			}
			*field(c) = d
			return nil
		},
		get:   func(c *config) string { return field(c).String() },
		value: func(c *config) any { return field(c).String() },
	}
}

func boolSetting(name, key, usage string, field func(*config) *bool) setting {
	return setting{
		name: name, key: key, usage: usage, isBool: true,
		set: func(c *config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			*field(c) = b
			return nil
		},
		get:   func(c *config) string { return strconv.FormatBool(*field(c)) },
		value: func(c *config) any { return *field(c) },
	}
}

func limitSetting(name, key, usage string, def ratelimit.Limit,
	field func(*config) *writtenLimit) setting {
	get := func(c *config) string {
		if w := field(c); w.Text != "" {
			return w.Text
		}
		return def.String()
	}
	return setting{
		name: name, key: key, arg: "RATE", usage: usage,
		set:   func(c *config, v string) error { return field(c).UnmarshalText([]byte(v)) },
		get:   get,
		value: func(c *config) any { return get(c) },
	}
}

func listSetting(name, key, usage string, field func(*config) *[]string) setting {
	get := func(c *config) string { return strings.Join(*field(c), ",") }
	return setting{
		name: name, key: key, arg: "LIST", usage: usage,
		set:   func(c *config, v string) error { *field(c) = splitList(v); return nil },
		get:   get,
		value: func(c *config) any { return get(c) },
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

// resourcesSetting reads the protected resources as comma-separated URLs.
func resourcesSetting() setting {
	get := func(c *config) string {
		var urls []string
		for _, r := range c.Resources {
			urls = append(urls, r.URL)
		}
		return strings.Join(urls, ",")
	}
	return setting{
		name: "resources", key: "resources", arg: "URLS",
		usage: "comma-separated protected resource URLs (MCP endpoints as clients see them)",
		set: func(c *config, v string) error {
			c.Resources = nil
			for _, u := range splitList(v) {
				c.Resources = append(c.Resources, resourceConfig{URL: u})
			}
			return nil
		},
		get:   get,
		value: func(c *config) any { return get(c) },
	}
}

// limitUsage ends the usage of every rate limit setting.
const limitUsage = " per client address: COUNT/UNIT[:BURST] (UNIT s, m or h) or off"

// settings lists every flag and environment variable of `serve`.
var settings = []setting{
	stringSetting("data-dir", "data_dir", "DIR", "data directory of the registry",
		func(c *config) *string { return &c.DataDir }),
	stringSetting("issuer", "issuer", "URL",
		"issuer URL of the authorization server, exactly as clients see it (no trailing /)",
		func(c *config) *string { return &c.Issuer }),
	resourcesSetting(),
	stringSetting("http-addr", "http_addr", "ADDR",
		"listen address (HOST:PORT) of the OAuth endpoints and HTTP check",
		func(c *config) *string { return &c.HTTPAddr }),
	stringSetting("grpc-addr", "grpc_addr", "ADDR",
		"listen address of the Envoy ext_authz gRPC service",
		func(c *config) *string { return &c.GRPCAddr }),
	stringSetting("admin-addr", "admin_addr", "ADDR",
		"listen address of the admin API (keep it on loopback)",
		func(c *config) *string { return &c.AdminAddr }),
	stringSetting("metrics-addr", "metrics_addr", "ADDR",
		"listen address of the Prometheus /metrics endpoint",
		func(c *config) *string { return &c.MetricsAddr }),
	stringSetting("log-format", "log_format", "FORMAT", "log format: text or json",
		func(c *config) *string { return &c.LogFormat }),
	stringSetting("log-level", "log_level", "LEVEL", "log level: debug, info, warn or error",
		func(c *config) *string { return &c.LogLevel }),
	durationSetting("access-token-ttl", "access_token_ttl", "lifetime of access tokens",
		func(c *config) *time.Duration { return &c.AccessTokenTTL }),
	durationSetting("refresh-token-ttl", "refresh_token_ttl", "lifetime of refresh tokens",
		func(c *config) *time.Duration { return &c.RefreshTokenTTL }),
	durationSetting("code-ttl", "code_ttl", "lifetime of authorization codes (at most 10m)",
		func(c *config) *time.Duration { return &c.CodeTTL }),
	positiveIntSetting("snapshot-records", "snapshot_records",
		"log records between registry snapshots",
		func(c *config) *int { return &c.SnapshotRecords }),
	stringSetting("registration-mode", "registration.mode", "MODE",
		"dynamic registration: open, token or closed",
		func(c *config) *string { return &c.Registration.Mode }),
	limitSetting("rate-limit-register", "rate_limits.register", "registrations"+limitUsage,
		oauth.DefaultRegisterLimit,
		func(c *config) *writtenLimit { return &c.RateLimits.Register }),
	limitSetting("rate-limit-token", "rate_limits.token",
		"token, revocation and introspection requests"+limitUsage, oauth.DefaultTokenLimit,
		func(c *config) *writtenLimit { return &c.RateLimits.Token }),
	limitSetting("rate-limit-login", "rate_limits.login", "login attempts"+limitUsage,
		oauth.DefaultLoginLimit,
		func(c *config) *writtenLimit { return &c.RateLimits.Login }),
	limitSetting("rate-limit-authorize", "rate_limits.authorize",
		"authorization page requests"+limitUsage, oauth.DefaultAuthorizeLimit,
		func(c *config) *writtenLimit { return &c.RateLimits.Authorize }),
	listSetting("trusted-proxies", "trusted_proxies",
		"comma-separated CIDR prefixes whose X-Forwarded-For is believed",
		func(c *config) *[]string { return &c.TrustedProxies }),
	boolSetting("dev-mode", "dev_mode",
		"accept unknown client ids (loopback issuer only; never in production)",
		func(c *config) *bool { return &c.Clients.DevMode }),
}

// settingNamed returns the setting with the flag name, or nil.
func settingNamed(name string) *setting {
	for i := range settings {
		if settings[i].name == name {
			return &settings[i]
		}
	}
	return nil
}

// envName returns the environment variable of a flag name.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// settingFlag is the flag.Value of a setting: it keeps the text as given,
// and setting.set reads it once every source is known, so that errors name
// the flag. A bool setting is a boolean flag: --dev-mode alone means true.
type settingFlag struct {
	text   string
	isBool bool
}

func (f *settingFlag) String() string {
	if f == nil {
		return ""
	}
	return f.text
}

func (f *settingFlag) Set(v string) error { f.text = v; return nil }

func (f *settingFlag) IsBoolFlag() bool { return f.isBool }

// commandFlags is the flag set of a command that reads the named settings
// (every setting when names is nil) and --config, with their flag values.
func commandFlags(cmd string, names []string) (*flag.FlagSet, *string, map[string]*settingFlag) {
	fs := flag.NewFlagSet("mcp-authz "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; help is printed by run
	configPath := fs.String("config", "", "YAML configuration file")
	def := defaultConfig()
	values := map[string]*settingFlag{}
	for _, s := range settings {
		if names != nil && !contains(names, s.name) {
			continue
		}
		v := &settingFlag{text: s.get(&def), isBool: s.isBool}
		fs.Var(v, s.name, s.usage)
		values[s.name] = v
	}
	return fs, configPath, values
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// parseArgs parses fs's flags wherever they appear among args, before a
// "--", and returns the other arguments in order. A boolean flag followed
// by true or false ("--dev-mode true") takes that word as its value.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	args = joinBoolValues(fs, args)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w (see %s -h)", err, fs.Name())
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// joinBoolValues rewrites "--flag WORD" as "--flag=WORD" for boolean flags
// when WORD reads as a bool, which the flag package would take for an
// argument.
func joinBoolValues(fs *flag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		name := strings.TrimLeft(a, "-")
		f := fs.Lookup(name)
		bf, isBool := flagValue(f).(interface{ IsBoolFlag() bool })
		if strings.HasPrefix(a, "-") && isBool && bf.IsBoolFlag() && i+1 < len(args) {
			if _, err := strconv.ParseBool(args[i+1]); err == nil {
				out = append(out, a+"="+args[i+1])
				i++
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

func flagValue(f *flag.Flag) flag.Value {
	if f == nil {
		return nil
	}
	return f.Value
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
		if u, err := url.Parse(c.Issuer); err == nil && !loopbackHost(u.Hostname()) {
			return fmt.Errorf("dev mode needs a loopback issuer (localhost, 127.0.0.1 or "+
				"[::1]), not %q: it lets any client id in", c.Issuer)
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

// loopbackHost reports whether a host name or address is this host only.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
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

// readConfigFile reads the YAML file at path over cfg. Keys it does not
// know and values of the wrong kind are refused, named by their YAML key.
// resources may also be one comma-separated string, or a list of URLs.
func readConfigFile(path string, cfg *config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty: all defaults
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: want keys such as issuer: at the top, got %s",
			path, nodeKind(root))
	}
	resourcesAsList(root)
	var problems []error
	checkNode(root, reflect.TypeFor[config](), "", &problems)
	if len(problems) > 0 {
		return fmt.Errorf("config file %s: %w", path, errors.Join(problems...))
	}
	if err := root.Decode(cfg); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// resourcesAsList rewrites a resources value written as a comma-separated
// string, and list items written as bare URLs, into the list of url keys
// the struct reads. The nodes keep their line numbers for errors.
func resourcesAsList(root *yaml.Node) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "resources" {
			continue
		}
		v := root.Content[i+1]
		if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			list := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: v.Line,
				Column: v.Column}
			for _, u := range splitList(v.Value) {
				list.Content = append(list.Content, urlNode(v, u))
			}
			root.Content[i+1] = list
			continue
		}
		if v.Kind == yaml.SequenceNode {
			for j, item := range v.Content {
				if item.Kind == yaml.ScalarNode && item.Tag != "!!null" {
					v.Content[j] = urlNode(item, item.Value)
				}
			}
		}
	}
}

// urlNode is the mapping {url: u} at the place of the node at.
func urlNode(at *yaml.Node, u string) *yaml.Node {
	scalar := func(v string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Line: at.Line,
			Column: at.Column}
	}
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: at.Line, Column: at.Column,
		Content: []*yaml.Node{scalar("url"), scalar(u)}}
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	yamlUnmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	durationType        = reflect.TypeFor[time.Duration]()
)

// checkNode compares the YAML node n, found at the dotted key path, with
// the Go type t it will be decoded into, and adds a problem for each
// unknown key and each value that does not decode, named by its key and
// line rather than by Go types.
func checkNode(n *yaml.Node, t reflect.Type, path string, problems *[]error) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	custom := reflect.PointerTo(t).Implements(textUnmarshalerType) ||
		reflect.PointerTo(t).Implements(yamlUnmarshalerType)
	switch {
	case custom:
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				*problems = append(*problems, fmt.Errorf("line %d: unknown key %s",
					k.Line, joinKey(path, k.Value)))
				continue
			}
			checkNode(v, ft, joinKey(path, k.Value), problems)
		}
		return
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) &&
		n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			checkNode(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), problems)
		}
		return
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkNode(n.Content[i+1], t.Elem(), joinKey(path, n.Content[i].Value), problems)
		}
		return
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		var te *yaml.TypeError
		if custom || !errors.As(err, &te) {
			*problems = append(*problems, fmt.Errorf("line %d: %s: %w", n.Line, path, err))
			return
		}
		*problems = append(*problems, fmt.Errorf("line %d: %s: got %s, want %s",
			n.Line, path, nodeKind(n), describeType(t)))
	}
}

// yamlFields maps the YAML keys of a struct type to their field types,
// following yaml.v3's rules (lower-cased field name without a tag, "-"
// skipped, inline structs merged).
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if contains(strings.Split(opts, ","), "inline") && f.Type.Kind() == reflect.Struct {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// nodeKind says what a YAML node holds, for error messages.
func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping of keys"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

// describeType says in YAML terms what a Go type accepts.
func describeType(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 90s, 10m or 720h"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.String:
		return "a single value"
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		return "a list such as [a, b]"
	}
	return "a mapping of keys"
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
