package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/mcp-authz/mcp-authz/authz/cimd"
	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
	"github.com/mcp-authz/mcp-authz/registry"
)

// ClientSources says where clients come from besides dynamic registration.
// The zero value has no configured clients, resolves client id metadata
// documents from the public internet and keeps development mode off.
//
// A client id is resolved in this order, the first source that knows it
// winning: a configured client (StaticClients); a client id metadata
// document when the id is an https URL and documents are enabled; a
// dynamic registration in the registry; development mode's unregistered
// client when DevMode is on; otherwise the id is unknown (invalid_client).
// Every endpoint (/authorize, the login and consent pages, /token,
// /revoke, /introspect) and the ext_authz decision (through
// Server.ClientKnown) use this order.
type ClientSources struct {
	// StaticClients are pre-registered clients. They live only in the
	// configuration: they are never written to the registry (their codes,
	// refresh tokens and consents are), so they survive restarts and
	// disappear when removed from the configuration. A dynamic
	// registration with the same id is ignored (logged at start), and
	// dynamic registration never hands out a configured id.
	StaticClients []StaticClient `yaml:"clients"`

	// DisableCIMD turns off client id metadata documents: https client ids
	// are then looked up like any other, and the metadata no longer
	// advertises client_id_metadata_document_supported.
	DisableCIMD bool `yaml:"disable_client_id_metadata_documents"`
	// CIMD configures how documents are fetched and cached (see package
	// cimd). Its ValidateRedirectURI is set by NewServer to the
	// registration rules, redirect allow and deny lists included.
	CIMD cimd.Options `yaml:"client_id_metadata_documents"`

	// DevMode accepts unknown client ids at /authorize and /token, for
	// local experiments: such a client is public, may use any loopback
	// http redirect URI or private-use scheme (never an https host), and
	// its tokens pass the ext_authz decision. NewServer refuses it unless
	// the issuer's host is localhost or a loopback address, and announces
	// it with a warning. Every log line about such a client is raised to
	// WARN and carries dev_mode=true.
	DevMode bool `yaml:"dev_mode"`
	// OnDevModeUse, when set, is called each time development mode lets an
	// unregistered client through, with where: "authorize",
	// "client_auth" (token, revocation and introspection requests) or
	// "decision" (an ext_authz decision). It must not block; use it for a
	// metric.
	OnDevModeUse func(where string) `yaml:"-"`
}

// Places development mode is used, for Config.OnDevModeUse.
const (
	DevUseAuthorize  = "authorize"
	DevUseClientAuth = "client_auth"
	DevUseDecision   = "decision"
)

// clientKind is the source a client was resolved from.
type clientKind uint8

const (
	kindDynamic clientKind = iota // registered through /register
	kindStatic                    // configured
	kindCIMD                      // a client id metadata document
	kindDev                       // development mode's unregistered client
)

// resolvedClient is a client found by resolveClient. Client is shared
// (the registry's record, a configured client or a cached document) and
// must not be modified.
type resolvedClient struct {
	*registry.Client
	kind   clientKind
	static *staticClient // when kind is kindStatic
}

// clientSources is the Server's state for ClientSources.
type clientSources struct {
	static map[string]*staticClient
	cimd   *cimd.Resolver // nil when documents are disabled
	dev    bool
	onDev  func(string)
	seen   *seenSet // dev client ids already logged by ClientKnown
}

// CheckDevModeIssuer refuses development mode for an issuer whose host is
// not this machine only: it lets any client id in.
func CheckDevModeIssuer(issuerHost string) error {
	if IsLoopbackHost(issuerHost) {
		return nil
	}
	return fmt.Errorf("development mode needs a loopback issuer (localhost, 127.0.0.1 or "+
		"[::1]), not %q: it lets any client id in", issuerHost)
}

// initClients validates the client sources, reads configured secrets,
// builds the document resolver and sets up development mode.
func (s *Server) initClients(cfg ClientSources, issuerHost string) error {
	cs := &clientSources{dev: cfg.DevMode, onDev: cfg.OnDevModeUse, seen: newSeenSet(1024)}
	var err error
	if cs.static, err = buildStaticClients(cfg.StaticClients); err != nil {
		return fmt.Errorf("oauth config: %w", err)
	}
	if !cfg.DisableCIMD {
		opts := cfg.CIMD
		opts.ValidateRedirectURI = s.documentRedirectRule
		if opts.Logger == nil {
			opts.Logger = s.log
		}
		if cs.cimd, err = cimd.New(opts); err != nil {
			return fmt.Errorf("oauth config: %w", err)
		}
	}
	if cfg.DevMode {
		if err := CheckDevModeIssuer(issuerHost); err != nil {
			return fmt.Errorf("oauth config: %w", err)
		}
	}
	s.clients = cs

	for id := range cs.static {
		if s.store.Client(id) != nil {
			s.log.Warn("a dynamic registration has the id of a configured client; "+
				"the configured client wins", "client_id", id)
		}
	}
	if cfg.DevMode {
		s.log = slog.New(&devModeHandler{inner: s.log.Handler(), isDev: s.isDevClient})
		s.log.Warn("development mode is on: unknown client ids are accepted at "+
			"/authorize and /token; never use it where others can reach the server",
			"dev_mode", true)
	}
	return nil
}

// documentRedirectRule checks a redirect URI of a client id metadata
// document with the rules of registration, redirect policy included.
func (s *Server) documentRedirectRule(u string) error {
	if err := validateRedirectURI(u); err != nil {
		return err
	}
	if e := s.checkRedirectPolicy([]string{u}); e != nil {
		return errors.New("not allowed by this server's redirect policy")
	}
	return nil
}

// cimdEnabled reports whether client id metadata documents are resolved.
func (s *Server) cimdEnabled() bool { return s.clients != nil && s.clients.cimd != nil }

// resolveClient finds the client with the given id in the order of
// ClientSources. An unknown or revoked client, or a document that cannot be
// used, is a 400 invalid_client whose description is safe to show. use,
// when not empty, names the place for OnDevModeUse when development mode
// lets the client through.
func (s *Server) resolveClient(ctx context.Context, id, use string) (*resolvedClient,
	*oauthError) {
	unknown := newError(http.StatusBadRequest, errInvalidClient,
		"the client is not registered (or was revoked); register again")
	cs := s.clients
	if sc := cs.static[id]; sc != nil {
		return &resolvedClient{Client: sc.client, kind: kindStatic, static: sc}, nil
	}
	if cs.cimd != nil && cimd.IsClientIDURL(id) {
		c, err := cs.cimd.Resolve(ctx, id)
		if err != nil {
			s.log.Debug("client metadata document refused", "client_id", clientmeta.Truncate(id, 200),
				"err", err)
			return nil, newError(http.StatusBadRequest, errInvalidClient, publicCIMDError(err))
		}
		if r := s.store.Client(id); r != nil && r.Revoked() {
			return nil, unknown
		}
		return &resolvedClient{Client: c, kind: kindCIMD}, nil
	}
	if c := s.store.Client(id); c != nil {
		if c.Revoked() {
			return nil, unknown
		}
		return &resolvedClient{Client: c, kind: kindDynamic}, nil
	}
	if s.isDevClient(id) {
		if use != "" {
			s.devUse(ctx, use, id)
		}
		return &resolvedClient{Client: devClient(id, s.now()), kind: kindDev}, nil
	}
	return nil, unknown
}

// publicCIMDError is the description of a document failure shown to the
// client: the kind and safe detail, never the network cause.
func publicCIMDError(err error) string {
	var e *cimd.Error
	if errors.As(err, &e) {
		return "client id metadata document: " + e.Public()
	}
	return "client id metadata document could not be used"
}

// ClientKnown reports whether a client may still use its tokens: it is
// configured, identified by a document URL whose domain is allowed (the
// document is not fetched), registered, or development mode's. revoked is
// set for a registered client an operator revoked, and for a document URL
// that the registry marks revoked or whose domain is now denied. It reads
// memory only and implements authz.ClientLookup for the ext_authz
// decision.
func (s *Server) ClientKnown(id string) (known, revoked bool) {
	cs := s.clients
	if _, ok := cs.static[id]; ok {
		return true, false
	}
	if cs.cimd != nil && cimd.IsClientIDURL(id) {
		r := s.store.Client(id)
		return true, !cs.cimd.Permitted(id) || (r != nil && r.Revoked())
	}
	if c := s.store.Client(id); c != nil {
		return true, c.Revoked()
	}
	if s.isDevClient(id) {
		if cs.onDev != nil {
			cs.onDev(DevUseDecision)
		}
		if cs.seen.add(id) {
			s.log.Warn("development mode: a token of an unregistered client passes the "+
				"decision", "client_id", id, "dev_mode", true)
		}
		return true, false
	}
	return false, false
}

// redirectAllowed reports whether the client may receive the authorization
// response at uri: a registered redirect URI (see matchRedirectURI), or for
// development mode's client any loopback http or private-use URI.
func (rc *resolvedClient) redirectAllowed(uri string) bool {
	if rc.kind != kindDev {
		return matchRedirectURI(rc.RedirectURIs, uri)
	}
	if validateRedirectURI(uri) != nil {
		return false
	}
	u, err := url.Parse(uri)
	return err == nil && u.Scheme != "https" && u.Scheme != "HTTPS"
}

// checkScope refuses scopes a configured client may not request.
func (rc *resolvedClient) checkScope(scope []string) *oauthError {
	if rc.kind != kindStatic {
		return nil
	}
	return rc.static.checkScope(scope)
}

// checkConfiguredScope refuses, at the token endpoint, scopes that a
// configured client may no longer be issued (its allowed scopes may have
// been narrowed since the grant).
func (s *Server) checkConfiguredScope(clientID, scope string) *oauthError {
	sc := s.clients.static[clientID]
	if sc == nil {
		return nil
	}
	toks, _ := parseScope(scope)
	if e := sc.checkScope(toks); e != nil {
		return badRequest(errInvalidScope, e.Description)
	}
	return nil
}

// reservedClientID reports whether id belongs to a configured client, so
// that dynamic registration never hands it out.
func (s *Server) reservedClientID(id string) bool {
	_, ok := s.clients.static[id]
	return ok
}

// authenticateConfigured authenticates a configured client or development
// mode's client at the token, revocation and introspection endpoints.
// method and secret are what the request presented.
func (s *Server) authenticateConfigured(ctx context.Context, rc *resolvedClient, method,
	secret string) (*registry.Client, *oauthError) {
	if rc.kind == kindDev {
		// Public, whatever it presents: its secret, if any, is ignored.
		s.devUse(ctx, DevUseClientAuth, rc.ID)
		return rc.Client, nil
	}
	if e := rc.static.authenticate(method, secret); e != nil {
		return nil, e
	}
	return rc.Client, nil
}

// describeClient fills the page fields that say where the client comes
// from.
func (s *Server) describeClient(d *pageData, req authRequest) {
	d.ClientIsURL = req.kind == kindCIMD
	d.DevClient = req.kind == kindDev
	d.Configured = req.kind == kindStatic
	if req.kind == kindCIMD || req.kind == kindDev {
		_, loopback := loopbackURI(req.redirectURI)
		d.LoopbackRedirect = loopback
	}
}

// devClient is the client development mode synthesises for an unknown id:
// public, with the code and refresh grants and no registered redirect URI.
func devClient(id string, now time.Time) *registry.Client {
	return &registry.Client{
		ID: id, TokenEndpointAuthMethod: authNone,
		GrantTypes:    []string{grantAuthorizationCode, grantRefreshToken},
		ResponseTypes: []string{"code"}, CreatedAt: now.UTC(),
	}
}

// isDevClient reports whether development mode applies to id: it is on,
// no other source knows id, and id is a plausible client id (1 to 200
// printable ASCII characters without spaces).
func (s *Server) isDevClient(id string) bool {
	cs := s.clients
	if cs == nil || !cs.dev || id == "" || len(id) > 200 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= 0x20 || id[i] >= 0x7f {
			return false
		}
	}
	if _, ok := cs.static[id]; ok {
		return false
	}
	if cs.cimd != nil && cimd.IsClientIDURL(id) {
		return false
	}
	return s.store.Client(id) == nil
}

// devUse logs and counts one use of development mode.
func (s *Server) devUse(ctx context.Context, where, id string) {
	s.log.Log(ctx, slog.LevelWarn, "development mode: unregistered client accepted",
		"client_id", id, "where", where, "dev_mode", true)
	if s.clients.onDev != nil {
		s.clients.onDev(where)
	}
}
