package authz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unsafe"

	"github.com/mcp-authz/mcp-authz/registry"
)

// Decider answers Requests from tokens and the registry.
//
// Check reads only memory: the verified-token cache, the key set and the
// registry's in-memory index. A token's signature, type, issuer and times are
// verified once and cached until the token expires; the audience, the client
// (registered and not revoked), the revocation of the token's jti and grant,
// and the scopes are checked on every call, so a revocation takes effect on
// the next request.
type Decider struct {
	tokens *Tokens
	store  *registry.Store
	lookup ClientLookup // the registry's clients unless SetClientLookup
	logger *slog.Logger
	now    func() time.Time
	ix     *resourceIndex
	cache  *tokenCache // nil disables caching (benchmarks)
}

// Answers that do not depend on a resource.
var (
	denyUnknownResource = &Decision{
		Reason: ReasonUnknownResource, Status: http.StatusForbidden,
		Body: denyBody("access_denied", ReasonUnknownResource),
	}
	denyDeadline = &Decision{
		Reason: ReasonDeadline, Status: http.StatusServiceUnavailable,
		Body: denyBody("temporarily_unavailable", ReasonDeadline),
	}
)

// NewDecider returns a Decider. cfg is taken through WithDefaults; validate
// it beforehand (a resource whose URL does not parse never matches). A nil
// logger means slog.Default().
func NewDecider(cfg Config, tokens *Tokens, store *registry.Store, logger *slog.Logger) *Decider {
	if logger == nil {
		logger = slog.Default()
	}
	return &Decider{
		tokens: tokens,
		store:  store,
		lookup: RegistryClients{Store: store},
		logger: logger.With("component", "decider"),
		now:    time.Now,
		ix:     newResourceIndex(cfg.WithDefaults()),
		cache:  newTokenCache(DefaultTokenCacheSize),
	}
}

// Check decides one request. It never blocks on I/O and never fails: every
// outcome is a Decision, a denial included, so a proxy's fail-open setting
// can never let a bad request through.
//
// The outcomes, in the order they are checked:
//   - the context is already done (the proxy gave up waiting): 503
//     ReasonDeadline, so the answer is not mistaken for a verdict on the
//     token; it is fail-closed either way;
//   - no configured resource serves the request (the "resource" context
//     extension names none, or host and path match none): 403
//     ReasonUnknownResource, without a challenge since there is no resource
//     metadata to point at;
//   - no bearer token: 401 with a challenge without an error code
//     (RFC 6750 §3.1); several tokens: 400 invalid_request;
//   - a token that fails verification, is for another resource, names an
//     unknown or revoked client, or is revoked (by jti or grant): 401
//     invalid_token;
//   - a token without every required scope: 403 insufficient_scope naming
//     them all;
//   - otherwise allow, with the token's identity.
//
// Denials carry a WWW-Authenticate challenge with the resource metadata URL
// and a small JSON body. The Body slice is shared between answers; callers
// must not modify it.
func (d *Decider) Check(ctx context.Context, req *Request) *Decision {
	if ctx.Err() != nil {
		return d.answer(ctx, req, denyDeadline, nil, nil)
	}
	p := d.resourceOf(req)
	if p == nil {
		return d.answer(ctx, req, denyUnknownResource, nil, nil)
	}
	if isPreflight(req) {
		return d.answer(ctx, req, &Decision{Allow: true, Reason: ReasonCORSPreflight,
			Status: http.StatusOK, Resource: p.res.URL}, nil, nil)
	}
	n, reason := p.needOf(req)
	if reason != ReasonOK {
		return d.answer(ctx, req, n.denial(reason), nil, nil)
	}
	raw, reason := bearerToken(req.Authorization)
	if reason != ReasonOK {
		return d.answer(ctx, req, n.denial(reason), nil, nil)
	}

	key := sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
	v, reason, err := d.verify(raw, &key)
	if reason != ReasonOK {
		return d.answer(ctx, req, n.denial(reason), &key, err)
	}
	if reason := d.authorize(v, p, n); reason != ReasonOK {
		return d.answer(ctx, req, n.denial(reason), &key, nil)
	}

	c := &v.claims
	return d.answer(ctx, req, &Decision{
		Allow: true, Reason: ReasonOK, Status: http.StatusOK,
		ClientID: c.ClientID, Subject: c.Subject, Scope: c.Scope, Resource: p.res.URL,
	}, &key, nil)
}

// resourceOf finds the resource of a request: the one the route names in
// the "resource" context extension, else the one matching host and path.
func (d *Decider) resourceOf(req *Request) *protected {
	if req == nil {
		return nil
	}
	if name, ok := req.ContextExtensions["resource"]; ok {
		return d.ix.byName(name)
	}
	return d.ix.match(req.Host, req.Path)
}

// verify returns the verified token, from the cache when it is there and
// still valid.
func (d *Decider) verify(raw string, key *[32]byte) (*verified, Reason, error) {
	now := d.now()
	if d.cache != nil {
		if v := d.cache.get(key, now); v != nil && d.tokens.keys.published(v.kid) {
			return v, ReasonOK, nil
		}
	}
	v, reason, err := d.tokens.verify(raw, now)
	if err != nil {
		return nil, reason, err
	}
	if d.cache != nil {
		d.cache.put(key, v, now)
	}
	return v, ReasonOK, nil
}

// authorize checks what may change while a token is valid: its audience,
// its client, its revocation and its scopes against what the request needs.
func (d *Decider) authorize(v *verified, p *protected, n *need) Reason {
	if v.claims.Audience != p.res.URL {
		return ReasonWrongAudience
	}
	switch known, revoked := d.lookup.ClientKnown(v.claims.ClientID); {
	case !known:
		return ReasonUnknownClient
	case revoked:
		return ReasonRevokedClient
	}
	if d.store.Revoked(v.jtiKey) || (v.grantKey != "" && d.store.Revoked(v.grantKey)) {
		return ReasonRevokedToken
	}
	// A withdrawn consent refuses tokens issued up to the withdrawal, in
	// whole seconds (iat has no more): one issued in that second is refused
	// too, rather than one issued before it let through.
	if r := d.store.Revocation(v.consentKey); r != nil &&
		v.claims.IssuedAt.Unix() <= r.CreatedAt.Unix() {
		return ReasonRevokedToken
	}
	if !n.satisfiedBy(v.claims.Scope) {
		return ReasonInsufficientScope
	}
	return ReasonOK
}

// hasScope reports whether the space-separated list scopes contains s.
func hasScope(scopes, s string) bool {
	for scopes != "" {
		var f string
		f, scopes, _ = strings.Cut(scopes, " ")
		if f == s {
			return true
		}
	}
	return false
}

// answer logs the decision at debug level and returns it; a template
// (a shared denial) is copied first.
func (d *Decider) answer(ctx context.Context, req *Request, dec *Decision, key *[32]byte,
	err error) *Decision {
	if !dec.Allow {
		c := *dec
		dec = &c
	}
	if !d.logger.Enabled(ctx, slog.LevelDebug) {
		return dec
	}
	attrs := []slog.Attr{
		slog.Bool("allow", dec.Allow), slog.String("reason", string(dec.Reason)),
		slog.String("resource", dec.Resource),
	}
	if req != nil {
		attrs = append(attrs, slog.String("decision_id", req.DecisionID),
			slog.String("method", req.Method), slog.String("host", req.Host))
	}
	if key != nil {
		attrs = append(attrs, slog.String("token_fp", hex.EncodeToString(key[:6])))
	}
	if dec.ClientID != "" {
		attrs = append(attrs, slog.String("client_id", dec.ClientID))
	}
	if err != nil {
		attrs = append(attrs, slog.Any("err", err))
	}
	d.logger.LogAttrs(ctx, slog.LevelDebug, "decision", attrs...)
	return dec
}

// denyReasons describes each per-resource denial: HTTP status, OAuth error
// code and a description safe to show the client.
var denyReasons = map[Reason]struct {
	status      int
	code, descr string
}{
	ReasonNoToken: {http.StatusUnauthorized, "invalid_request",
		"a bearer token is required"},
	ReasonMultipleTokens: {http.StatusBadRequest, "invalid_request",
		"the request carries more than one authorization"},
	ReasonMalformed: {http.StatusUnauthorized, "invalid_token",
		"the access token is malformed"},
	ReasonBadSignature: {http.StatusUnauthorized, "invalid_token",
		"the access token signature is invalid"},
	ReasonWrongType: {http.StatusUnauthorized, "invalid_token",
		"the token is not an access token"},
	ReasonExpired: {http.StatusUnauthorized, "invalid_token",
		"the access token expired"},
	ReasonNotYetValid: {http.StatusUnauthorized, "invalid_token",
		"the access token is not yet valid"},
	ReasonWrongIssuer: {http.StatusUnauthorized, "invalid_token",
		"the access token is from another issuer"},
	ReasonWrongAudience: {http.StatusUnauthorized, "invalid_token",
		"the access token is not for this resource"},
	ReasonUnknownClient: {http.StatusUnauthorized, "invalid_token",
		"the client is not registered"},
	ReasonRevokedClient: {http.StatusUnauthorized, "invalid_token",
		"the client has been revoked"},
	ReasonRevokedToken: {http.StatusUnauthorized, "invalid_token",
		"the access token has been revoked"},
	ReasonInsufficientScope: {http.StatusForbidden, "insufficient_scope",
		"the access token lacks a required scope"},
	ReasonMCPHeaderMismatch: {http.StatusBadRequest, "invalid_request",
		"the Mcp-Method or Mcp-Name header is malformed or disagrees with the body"},
}

// denials builds the denial of each reason for a request to resource r
// that needs scopes. The challenge of a 401 names the needed scopes (all of
// the resource's when none is needed); a 403 names every needed scope.
func denials(r Resource, needed []string) map[Reason]*Decision {
	meta := ResourceMetadataURL(r.URL)
	scopes := needed
	if len(scopes) == 0 {
		scopes = r.Scopes
	}
	scope := strings.Join(scopes, " ")
	base := `Bearer resource_metadata="` + meta + `"`
	if scope != "" {
		base += `, scope="` + scope + `"`
	}

	out := make(map[Reason]*Decision, len(denyReasons))
	for reason, dr := range denyReasons {
		var challenge string
		switch reason {
		case ReasonNoToken:
			challenge = base
		case ReasonInsufficientScope:
			challenge = `Bearer error="insufficient_scope", scope="` +
				strings.Join(needed, " ") + `", resource_metadata="` + meta +
				`", error_description="` + dr.descr + `"`
		default:
			challenge = base + `, error="` + dr.code + `", error_description="` +
				dr.descr + `"`
		}
		out[reason] = &Decision{
			Reason: reason, Status: dr.status, WWWAuthenticate: challenge,
			Body: denyBody(dr.code, reason), Resource: r.URL,
		}
	}
	return out
}

// denyBody is the JSON body of a denial.
func denyBody(code string, reason Reason) []byte {
	descr := denyReasons[reason].descr
	switch reason {
	case ReasonUnknownResource:
		descr = "no protected resource is configured for this request"
	case ReasonDeadline:
		descr = "the authorization check ran out of time"
	}
	b, err := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Reason      Reason `json:"reason"`
	}{code, descr, reason})
	if err != nil {
		panic("authz: encoding a deny body: " + err.Error()) // strings always encode
	}
	return b
}
