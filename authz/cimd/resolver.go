package cimd

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mcp-authz/mcp-authz/registry"
)

// Defaults applied by New to zero Options.
const (
	DefaultTimeout       = 5 * time.Second
	DefaultMaxBytes      = 64 << 10
	DefaultCacheSize     = 1024
	DefaultTTL           = 5 * time.Minute
	DefaultMaxTTL        = 24 * time.Hour
	DefaultErrorTTL      = 10 * time.Second
	DefaultStaleIfError  = time.Hour
	DefaultMaxConcurrent = 8
)

// HostResolver looks up the addresses of a host name; *net.Resolver is one.
type HostResolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configures a Resolver. The zero value is a good configuration for
// the public internet. The yaml tags name the settings an operator may set
// in a configuration file; the hooks below them are for programs and tests.
type Options struct {
	// Timeout bounds one whole fetch: lookup, connection, TLS handshake,
	// headers and body (default 5s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxBytes is the largest document accepted (default 64 KiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// CacheSize is the number of documents (and failures) kept (default
	// 1024); the least recently used go first.
	CacheSize int `yaml:"cache_size"`
	// DefaultTTL is how long a document is cached when its response says
	// nothing about caching (default 5m).
	DefaultTTL time.Duration `yaml:"default_ttl"`
	// MinTTL and MaxTTL clamp the lifetime of every cacheable response
	// (defaults 0 and 24h). Responses marked no-store, no-cache or
	// max-age=0 are never cached, whatever MinTTL says.
	MinTTL time.Duration `yaml:"min_ttl"`
	MaxTTL time.Duration `yaml:"max_ttl"` // see MinTTL
	// ErrorTTL is how long a failed fetch is remembered before the URL is
	// tried again (default 10s; negative: not remembered).
	ErrorTTL time.Duration `yaml:"error_ttl"`
	// StaleIfError is how long after its expiry a document may still be
	// used when fetching it again fails for a network reason (default 1h;
	// negative: never).
	StaleIfError time.Duration `yaml:"stale_if_error"`
	// MaxConcurrent bounds the fetches running at once (default 8).
	MaxConcurrent int `yaml:"max_concurrent"`

	// AllowDomains, when not empty, lists the only hosts whose documents
	// are fetched: exact host names (or IP addresses) or "*.example.com"
	// for every subdomain of example.com (not example.com itself).
	AllowDomains []string `yaml:"allow_domains"`
	// DenyDomains lists hosts whose documents are never used, seeded ones
	// included; same syntax. Deny wins over allow.
	DenyDomains []string `yaml:"deny_domains"`
	// AllowPrivate lets documents be fetched from loopback, private,
	// link-local and other non-public addresses: for tests and private
	// deployments only. It does not allow plain http.
	AllowPrivate bool `yaml:"allow_private_addresses"`
	// Seed maps client id URLs to their documents (JSON text). Seeded
	// documents are validated by New, never fetched and never expire.
	Seed map[string]string `yaml:"seed"`

	// ValidateRedirectURI checks each redirect URI of a document after the
	// minimal rules (absolute, no fragment, no user info). The
	// authorization server passes its own registration rules.
	ValidateRedirectURI func(string) error `yaml:"-"`
	// Resolver looks up host names (default net.DefaultResolver).
	Resolver HostResolver `yaml:"-"`
	// DialContext opens the TCP connection to a vetted "ip:port" (default
	// a net.Dialer). Tests use it to observe connection attempts.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error) `yaml:"-"`
	// RootCAs are the certificate authorities trusted for document hosts
	// (default: the system's).
	RootCAs *x509.CertPool `yaml:"-"`
	// Logger receives fetch and refusal lines (default slog.Default()).
	Logger *slog.Logger `yaml:"-"`
	// Now is the clock (default time.Now).
	Now func() time.Time `yaml:"-"`
}

func (o Options) withDefaults() Options {
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	o.DefaultTTL = cmp.Or(o.DefaultTTL, DefaultTTL)
	o.MaxTTL = cmp.Or(o.MaxTTL, DefaultMaxTTL)
	o.ErrorTTL = cmp.Or(o.ErrorTTL, DefaultErrorTTL)
	o.StaleIfError = cmp.Or(o.StaleIfError, DefaultStaleIfError)
	o.MaxBytes = cmp.Or(o.MaxBytes, DefaultMaxBytes)
	o.CacheSize = cmp.Or(o.CacheSize, DefaultCacheSize)
	o.MaxConcurrent = cmp.Or(o.MaxConcurrent, DefaultMaxConcurrent)
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.DialContext == nil {
		o.DialContext = (&net.Dialer{}).DialContext
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	// Sorted, so that the errors come in the same order every time.
	checks := map[string]time.Duration{
		"timeout": o.Timeout, "default ttl": o.DefaultTTL, "min ttl": o.MinTTL,
		"max ttl": o.MaxTTL,
	}
	for _, name := range slices.Sorted(maps.Keys(checks)) {
		d := checks[name]
		if d < 0 {
			errs = append(errs, fmt.Errorf("negative %s %v", name, d))
		}
	}
	if o.MinTTL > o.MaxTTL {
		errs = append(errs, fmt.Errorf("min ttl %v above max ttl %v", o.MinTTL, o.MaxTTL))
	}
	if o.MaxBytes < 0 || o.CacheSize < 0 || o.MaxConcurrent < 0 {
		errs = append(errs, errors.New("negative max bytes, cache size or concurrency"))
	}
	return errors.Join(errs...)
}

// Resolver resolves client ids that are URLs to clients. It is safe for
// concurrent use.
type Resolver struct {
	opts  Options
	log   *slog.Logger
	allow []domainPattern
	deny  []domainPattern
	seeds map[string]*registry.Client
	cache *cache
	group singleflight.Group
	slots chan struct{} // one token per running fetch
}

// New returns a Resolver for opts, after applying the defaults. It refuses
// invalid options, domain patterns and seeded documents, naming them.
func New(opts Options) (*Resolver, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("cimd options: %w", err)
	}
	r := &Resolver{
		opts:  opts,
		log:   opts.Logger.With("component", "cimd"),
		seeds: map[string]*registry.Client{},
		cache: newCache(opts.CacheSize),
		slots: make(chan struct{}, opts.MaxConcurrent),
	}
	var errs []error
	for _, list := range []struct {
		in  []string
		out *[]domainPattern
	}{{opts.AllowDomains, &r.allow}, {opts.DenyDomains, &r.deny}} {
		for _, p := range list.in {
			dp, err := parseDomainPattern(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			*list.out = append(*list.out, dp)
		}
	}
	for id, doc := range opts.Seed {
		if err := ValidateClientIDURL(id); err != nil {
			errs = append(errs, fmt.Errorf("seeded client id %q: %w", id, err))
			continue
		}
		c, err := ParseDocument(id, []byte(doc), opts.ValidateRedirectURI, opts.Now())
		if err != nil {
			errs = append(errs, fmt.Errorf("seeded document %q: %w", id, err))
			continue
		}
		r.seeds[id] = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cimd options: %w", err)
	}
	return r, nil
}

// Seeded returns the client ids of the seeded documents.
func (r *Resolver) Seeded() []string {
	out := make([]string, 0, len(r.seeds))
	for id := range r.seeds {
		out = append(out, id)
	}
	return out
}

// Permitted reports whether the domain lists let id be used as a client:
// id starts with https://, its host is not denied, and it is either seeded
// or its host is allowed. It neither validates the rest of the URL nor
// fetches anything, and does not allocate: the ext_authz decision calls it
// for every token of a document client (such tokens are only issued after
// a full Resolve).
func (r *Resolver) Permitted(id string) bool {
	host, ok := hostOf(id)
	if !ok || r.denied(host) {
		return false
	}
	if _, seeded := r.seeds[id]; seeded {
		return true
	}
	return r.allowed(host)
}

func (r *Resolver) denied(host string) bool {
	for _, p := range r.deny {
		if p.matches(host) {
			return true
		}
	}
	return false
}

func (r *Resolver) allowed(host string) bool {
	if len(r.allow) == 0 {
		return true
	}
	for _, p := range r.allow {
		if p.matches(host) {
			return true
		}
	}
	return false
}

// Resolve returns the client that the document at id describes: a seeded
// document, a cached one, or one fetched now. The client is shared and
// must not be modified. Every error is an *Error (see the Err* kinds); its
// Public text may be shown to the client.
func (r *Resolver) Resolve(ctx context.Context, id string) (*registry.Client, error) {
	if err := ValidateClientIDURL(id); err != nil {
		return nil, &Error{Kind: ErrInvalidURL, Detail: err.Error()}
	}
	host, _ := hostOf(id)
	if r.denied(host) {
		return nil, &Error{Kind: ErrDomainRefused, Detail: "the domain is denied"}
	}
	if c := r.seeds[id]; c != nil {
		return c, nil
	}
	if !r.allowed(host) {
		return nil, &Error{Kind: ErrDomainRefused, Detail: "the domain is not in the allow list"}
	}
	if e := r.cache.get(id); e != nil && r.opts.Now().Before(e.expires) {
		return e.client, e.err
	}

	ch := r.group.DoChan(id, func() (any, error) {
		// Detached from the first caller: the fetch has its own deadline and
		// its result serves every caller waiting for it.
		e := r.refresh(context.WithoutCancel(ctx), id)
		return e, nil
	})
	select {
	case res := <-ch:
		e := res.Val.(*entry)
		return e.client, e.err
	case <-ctx.Done():
		return nil, &Error{Kind: ErrFetch, Detail: "the request ended first", Err: ctx.Err()}
	}
}

// refresh fetches id and updates the cache, unless a concurrent refresh
// has just done so.
func (r *Resolver) refresh(ctx context.Context, id string) *entry {
	old := r.cache.get(id)
	if old != nil && r.opts.Now().Before(old.expires) {
		return old
	}
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	case <-time.After(r.opts.Timeout):
		return &entry{id: id, err: &Error{Kind: ErrFetch, Detail: "too many fetches at once"}}
	}

	start := r.opts.Now()
	c, ttl, err := r.fetch(ctx, id)
	now := r.opts.Now()
	if err != nil {
		r.log.Info("client metadata document refused", "client_id", id, "err", err,
			"elapsed", now.Sub(start))
		if errors.Is(err, ErrFetch) && old != nil && old.client != nil &&
			now.Before(old.stale) && r.opts.StaleIfError > 0 {
			stale := *old
			stale.expires = now.Add(max(r.opts.ErrorTTL, 0))
			r.cache.put(&stale)
			r.log.Warn("using an expired client metadata document: the fetch failed",
				"client_id", id, "fetched", old.fetched)
			return &stale
		}
		e := &entry{id: id, err: err, fetched: now, expires: now.Add(max(r.opts.ErrorTTL, 0))}
		if r.opts.ErrorTTL > 0 {
			r.cache.put(e)
		} else {
			r.cache.remove(id)
		}
		return e
	}
	e := &entry{id: id, client: c, fetched: now, expires: now.Add(ttl)}
	e.stale = e.expires.Add(r.opts.StaleIfError)
	if ttl > 0 {
		r.cache.put(e)
	} else {
		r.cache.remove(id)
	}
	r.log.Debug("client metadata document fetched", "client_id", id, "ttl", ttl,
		"elapsed", now.Sub(start))
	return e
}

// lifetime clamps the cache lifetime given by a response's headers.
func (r *Resolver) lifetime(ttl time.Duration, given bool) time.Duration {
	if !given {
		ttl = r.opts.DefaultTTL
	}
	if ttl <= 0 {
		return 0
	}
	return min(max(ttl, r.opts.MinTTL), r.opts.MaxTTL)
}
