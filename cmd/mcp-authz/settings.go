package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-authz/mcp-authz/authz/oauth"
	"github.com/mcp-authz/mcp-authz/authz/ratelimit"
)

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
		if names != nil && !slices.Contains(names, s.name) {
			continue
		}
		v := &settingFlag{text: s.get(&def), isBool: s.isBool}
		fs.Var(v, s.name, s.usage)
		values[s.name] = v
	}
	return fs, configPath, values
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
