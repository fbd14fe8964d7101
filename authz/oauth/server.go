package oauth

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/registry"
)

// Defaults applied by NewServer to zero Config durations.
const (
	DefaultCodeTTL      = 2 * time.Minute
	DefaultRefreshTTL   = 30 * 24 * time.Hour
	DefaultSessionTTL   = 12 * time.Hour
	DefaultAuthorizeTTL = 15 * time.Minute
)

// Config configures the authorization server.
type Config struct {
	authz.Config

	// CodeTTL is the lifetime of an authorization code (default 2m).
	CodeTTL time.Duration
	// RefreshTTL is the lifetime of a refresh token; each rotation starts
	// a new one (default 30 days).
	RefreshTTL time.Duration
	// SessionTTL is how long a browser stays logged in to the authorization
	// page (default 12h).
	SessionTTL time.Duration
	// AuthorizeTTL is how long a login or consent page can be submitted
	// after it was shown (default 15m).
	AuthorizeTTL time.Duration

	// Registration is the dynamic client registration policy (policy.go).
	Registration RegistrationPolicy
	// RateLimits bounds requests per client address (ratelimit.go).
	RateLimits RateLimits
	// TrustedProxies are the proxies whose X-Forwarded-For header names the
	// client address for rate limits and lockouts; none by default, so the
	// connection's peer is the client. The header from any other peer is
	// ignored, with a warning naming the peer (once per peer, for the first
	// few peers).
	TrustedProxies []netip.Prefix

	// OnRegistration is called after a client registration is stored,
	// OnTokenIssued after a token answer with its grant type, and
	// OnRateLimited when a rate limit or lockout refuses a request, with
	// the limit's name (LimitRegister, LimitToken, LimitLogin,
	// LimitAuthorize, LimitLockout). Each may be nil and must not block.
	OnRegistration func()
	OnTokenIssued  func(grantType string)
	OnRateLimited  func(limit string)

	// ClientSources adds configured clients, client id metadata documents
	// and development mode (clients.go).
	ClientSources
}

func (c Config) withDefaults() Config {
	c.Config = c.Config.WithDefaults()
	c.CodeTTL = cmp.Or(c.CodeTTL, DefaultCodeTTL)
	c.RefreshTTL = cmp.Or(c.RefreshTTL, DefaultRefreshTTL)
	c.SessionTTL = cmp.Or(c.SessionTTL, DefaultSessionTTL)
	c.AuthorizeTTL = cmp.Or(c.AuthorizeTTL, DefaultAuthorizeTTL)
	c.Registration = c.Registration.withDefaults()
	c.RateLimits = c.RateLimits.withDefaults()
	return c
}

func (c Config) validate() error {
	errs := []error{c.Config.Validate(), c.Registration.validate(), c.RateLimits.validate()}
	// Sorted, so that the errors come in the same order every time.
	checks := map[string]time.Duration{
		"code ttl": c.CodeTTL, "refresh ttl": c.RefreshTTL,
		"session ttl": c.SessionTTL, "authorize ttl": c.AuthorizeTTL,
	}
	for _, name := range slices.Sorted(maps.Keys(checks)) {
		d := checks[name]
		if d < 0 {
			errs = append(errs, fmt.Errorf("negative %s %v", name, d))
		}
	}
	return errors.Join(errs...)
}

// Server is the OAuth 2.1 authorization server. It is an http.Handler that
// serves every endpoint and metadata document; route to it the issuer's
// paths and the protected resources' /.well-known/oauth-protected-resource
// paths.
type Server struct {
	cfg    Config
	store  *registry.Store
	keys   *authz.Keys
	tokens *authz.Tokens
	log    *slog.Logger
	now    func() time.Time

	issuer   string // exactly as configured
	base     string // issuer URL without a trailing slash, for endpoints
	basePath string // issuer path without a trailing slash ("" at the root)
	origin   string // the issuer's web origin, for checkFormOrigin (origin.go)
	secure   bool   // issuer is https: cookies get Secure and __Host-

	routes   map[string]http.HandlerFunc
	asMeta   []byte
	oidcMeta []byte
	flows    *flowStore
	policy   *registrationPolicy // policy.go
	limits   *limiters           // ratelimit.go
	clients  *clientSources      // clients.go
}

// NewServer returns the authorization server for cfg. It applies the
// defaults of authz.Config.WithDefaults and of Config, and refuses an
// invalid configuration.
func NewServer(cfg Config, store *registry.Store, keys *authz.Keys, tokens *authz.Tokens,
	logger *slog.Logger) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("oauth config: %w", err)
	}
	if store == nil || keys == nil || tokens == nil {
		return nil, errors.New("oauth: store, keys and tokens are required")
	}
	if logger == nil {
		logger = slog.Default()
	}
	iu, err := url.Parse(cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("parsing issuer %q: %w", cfg.Issuer, err)
	}
	origin, ok := webOrigin(iu.Scheme + "://" + iu.Host)
	if !ok {
		return nil, fmt.Errorf("issuer %q: no web origin", cfg.Issuer)
	}
	s := &Server{
		cfg:      cfg,
		store:    store,
		keys:     keys,
		tokens:   tokens,
		log:      logger.With("component", "oauth"),
		now:      time.Now,
		issuer:   cfg.Issuer,
		base:     strings.TrimSuffix(cfg.Issuer, "/"),
		basePath: strings.TrimSuffix(iu.EscapedPath(), "/"),
		origin:   origin,
		secure:   strings.EqualFold(iu.Scheme, "https"),
		flows:    newFlowStore(),
		policy:   newRegistrationPolicy(cfg.Registration),
		limits:   newLimiters(cfg.RateLimits),
	}
	if err := s.initClients(cfg.ClientSources, iu.Hostname()); err != nil {
		return nil, err
	}
	if s.asMeta, s.oidcMeta, err = s.buildMetadata(); err != nil {
		return nil, err
	}
	s.routes = s.buildRoutes()
	s.log.Debug("authorization server configured", "issuer", s.issuer,
		"resources", len(cfg.Resources), "code_ttl", cfg.CodeTTL,
		"refresh_ttl", cfg.RefreshTTL, "session_ttl", cfg.SessionTTL)
	return s, nil
}

// Endpoint paths below the issuer.
const (
	pathAuthorize  = "/authorize"
	pathToken      = "/token"
	pathRegister   = "/register"
	pathRevoke     = "/revoke"
	pathIntrospect = "/introspect"
	pathJWKS       = "/.well-known/jwks.json"
	pathASMeta     = "/.well-known/oauth-authorization-server"
	pathOIDCMeta   = "/.well-known/openid-configuration"
	pathPRM        = "/.well-known/oauth-protected-resource"
)

// buildRoutes maps every served path to its handler. Endpoints live below the
// issuer's path; when the issuer has a path they are also served at the root,
// where clients without metadata look for them.
func (s *Server) buildRoutes() map[string]http.HandlerFunc {
	rt := map[string]http.HandlerFunc{}
	endpoints := map[string]http.HandlerFunc{
		pathAuthorize:      s.handleAuthorize,
		pathToken:          cors(s.limited(LimitToken, s.handleToken)),
		pathRegister:       cors(s.limited(LimitRegister, s.handleRegister)),
		pathRegister + "/": cors(s.limited(LimitRegister, s.handleRegister)),
		pathRevoke:         cors(s.limited(LimitToken, s.handleRevoke)),
		pathIntrospect:     cors(s.limited(LimitToken, s.handleIntrospect)),
		pathConsents:       s.handleConsents,
		pathConsentRevoke:  s.handleConsentRevoke,
		pathJWKS:           cors(s.handleJWKS),
		pathASMeta:         cors(s.metadataHandler(s.asMeta)),
		pathOIDCMeta:       cors(s.metadataHandler(s.oidcMeta)),
	}
	for p, h := range endpoints {
		rt[s.basePath+p] = h
		if _, taken := rt[p]; !taken {
			rt[p] = h
		}
	}
	if s.basePath != "" {
		// RFC 8414 §3.1 path insertion, and OpenID's too.
		rt[pathASMeta+s.basePath] = cors(s.metadataHandler(s.asMeta))
		rt[pathOIDCMeta+s.basePath] = cors(s.metadataHandler(s.oidcMeta))
	}
	return rt
}

// ServeHTTP serves the authorization server's endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	if h, ok := s.routes[p]; ok {
		h(w, r)
		return
	}
	if s.serveManagement(w, r, p) {
		return
	}
	if p == pathPRM || strings.HasPrefix(p, pathPRM+"/") {
		cors(s.handleResourceMetadata)(w, r)
		return
	}
	writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
}
