package oauth

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
	"github.com/mcp-authz/mcp-authz/authz/ratelimit"
)

// Default rate limits per client address. Brokered clients (Claude.ai's
// connectors, one Open WebUI server for all its users) reach the server from
// a few addresses on behalf of many users, hence the generous token limit.
var (
	DefaultRegisterLimit = ratelimit.Limit{PerMinute: 10, Burst: 20}
	DefaultTokenLimit    = ratelimit.Limit{PerMinute: 120, Burst: 240}
	DefaultLoginLimit    = ratelimit.Limit{PerMinute: 10, Burst: 10}
	// DefaultAuthorizeLimit allows a browser, or a few behind one address,
	// to start authorizations freely, and bounds what one address can
	// make the server parse, resolve and render.
	DefaultAuthorizeLimit = ratelimit.Limit{PerMinute: 60, Burst: 120}
)

// Names of the limits, passed to Config.OnRateLimited.
const (
	LimitRegister  = "register"
	LimitToken     = "token"
	LimitLogin     = "login"
	LimitAuthorize = "authorize"
	LimitLockout   = "lockout"
)

// RateLimits bounds how often one client address may call the endpoints.
// A zero Limit takes its default; a Limit with Off set is not applied.
// Addresses are found with ratelimit.ClientAddr and Config.TrustedProxies;
// IPv6 addresses are limited by /64.
type RateLimits struct {
	// Register limits registration and its management (RFC 7591, 7592);
	// default 10 a minute, bursts of 20.
	Register ratelimit.Limit
	// Token limits the token, revocation and introspection endpoints;
	// default 120 a minute, bursts of 240.
	Token ratelimit.Limit
	// Login limits sign-in attempts on the login pages, right or wrong;
	// default 10 a minute, bursts of 10.
	Login ratelimit.Limit
	// Authorize limits the authorization requests started at the
	// authorization endpoint (not the login and consent forms, which the
	// Login limit and a signed-in session guard); default 60 a minute,
	// bursts of 120. Past it the browser gets a 429 page.
	Authorize ratelimit.Limit
	// Lockout locks a user name at one client address after repeated
	// failed sign-ins (default: 5 failures, each within 15 minutes of the
	// last, lock for 15 minutes, doubling on each further lockout up to 4
	// hours). It is keyed by user name and address together, so that nobody
	// can lock a user out from everywhere.
	Lockout ratelimit.LockoutPolicy
	// MaxKeys bounds the addresses each limit remembers (default 10000).
	MaxKeys int
}

func (l RateLimits) withDefaults() RateLimits {
	for _, f := range []struct {
		lim *ratelimit.Limit
		def ratelimit.Limit
	}{
		{&l.Register, DefaultRegisterLimit}, {&l.Token, DefaultTokenLimit},
		{&l.Login, DefaultLoginLimit}, {&l.Authorize, DefaultAuthorizeLimit},
	} {
		if *f.lim == (ratelimit.Limit{}) {
			*f.lim = f.def
		}
	}
	l.Lockout = l.Lockout.WithDefaults()
	if l.MaxKeys == 0 {
		l.MaxKeys = ratelimit.DefaultMaxKeys
	}
	return l
}

func (l RateLimits) validate() error {
	errs := []error{l.Lockout.Validate()}
	// Sorted, so that the errors come in the same order every time.
	checks := map[string]ratelimit.Limit{
		LimitRegister: l.Register, LimitToken: l.Token, LimitLogin: l.Login,
		LimitAuthorize: l.Authorize,
	}
	for _, name := range slices.Sorted(maps.Keys(checks)) {
		lim := checks[name]
		if !lim.Off && (lim.PerMinute <= 0 || lim.Burst < 1) {
			errs = append(errs, fmt.Errorf("%s rate limit %+v: want a positive rate and burst",
				name, lim))
		}
	}
	if l.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("rate limit key bound %d is negative", l.MaxKeys))
	}
	return errors.Join(errs...)
}

// maxForwardWarnings bounds the peers warned about for an ignored
// X-Forwarded-For header, so that clients sending their own cannot grow the
// set or flood the log.
const maxForwardWarnings = 8

// limiters holds the server's rate limit state.
type limiters struct {
	byName  map[string]*ratelimit.Limiter
	lockout *ratelimit.Lockout

	mu          sync.Mutex
	warnedPeers map[netip.Addr]bool // peers warned about by warnForwarded
}

func newLimiters(l RateLimits) *limiters {
	return &limiters{
		byName: map[string]*ratelimit.Limiter{
			LimitRegister:  ratelimit.NewLimiter(l.Register, l.MaxKeys),
			LimitToken:     ratelimit.NewLimiter(l.Token, l.MaxKeys),
			LimitLogin:     ratelimit.NewLimiter(l.Login, l.MaxKeys),
			LimitAuthorize: ratelimit.NewLimiter(l.Authorize, l.MaxKeys),
		},
		lockout:     ratelimit.NewLockout(l.Lockout, l.MaxKeys),
		warnedPeers: map[netip.Addr]bool{},
	}
}

// clientKey is the rate limit key of the request's client address.
func (s *Server) clientKey(r *http.Request) string {
	s.warnForwarded(r)
	return ratelimit.Key(ratelimit.ClientAddr(r, s.cfg.TrustedProxies))
}

// warnForwarded warns, once per peer address (for a few of them), when r
// carries an X-Forwarded-For header from a peer outside TrustedProxies: the
// header is ignored, so when that peer is a proxy every client behind it
// shares one rate limit and lockout key.
func (s *Server) warnForwarded(r *http.Request) {
	if !ratelimit.Forwarded(r) {
		return
	}
	peer := ratelimit.ClientAddr(r, nil) // the connection's peer
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(peer) {
			return
		}
	}
	l := s.limits
	l.mu.Lock()
	if l.warnedPeers[peer] || len(l.warnedPeers) >= maxForwardWarnings {
		l.mu.Unlock()
		return
	}
	l.warnedPeers[peer] = true
	l.mu.Unlock()
	s.log.Warn("X-Forwarded-For ignored: the peer is not a trusted proxy; if it is your "+
		"proxy, add it to --trusted-proxies (MCP_AUTHZ_TRUSTED_PROXIES), or every client "+
		"behind it shares one rate limit and lockout",
		"peer", peerName(peer), "trusted_proxies", s.cfg.TrustedProxies)
}

// peerName names a peer address in a log line.
func peerName(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown (not an IP connection)"
	}
	return a.String()
}

// allow takes a token from the named limit for the request's client. When
// the limit is exhausted it sets Retry-After and returns the wait in whole
// seconds.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, name string) (int, bool) {
	key := s.clientKey(r)
	ok, wait := s.limits.byName[name].Allow(key, s.now())
	if ok {
		return 0, true
	}
	secs := ratelimit.RetryAfterSeconds(wait)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	s.log.Debug("rate limited", "limit", name, "client", key, "retry_after", secs)
	s.hookRateLimited(name)
	return secs, false
}

// limited wraps a JSON endpoint with the named rate limit: past it the
// answer is 429 with Retry-After and a temporarily_unavailable error, a
// code that makes no client drop its registration or tokens.
func (s *Server) limited(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if secs, ok := s.allow(w, r, name); !ok {
			writeError(w, http.StatusTooManyRequests, errTemporarilyUnavailable,
				fmt.Sprintf("too many requests from this address; retry in %d seconds", secs))
			return
		}
		h(w, r)
	}
}

// checkPassword authenticates a sign-in form's user name and password,
// subject to the login rate limit and the lockout of the user name at the
// client's address. blocked is the message to show instead when the
// attempt was not even tried (Retry-After is set then); answer with 429.
func (s *Server) checkPassword(w http.ResponseWriter, r *http.Request, username string) (
	subject string, ok bool, blocked string) {
	if secs, ok := s.allow(w, r, LimitLogin); !ok {
		return "", false, fmt.Sprintf("Too many sign-in attempts from your address. "+
			"Try again in %s.", humanWait(secs))
	}
	client := s.clientKey(r)
	key := lockoutKey(username, client)
	now := s.now()
	if wait := s.limits.lockout.Locked(key, now); wait > 0 {
		secs := ratelimit.RetryAfterSeconds(wait)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.hookRateLimited(LimitLockout)
		return "", false, fmt.Sprintf("Too many failed sign-in attempts for this user from "+
			"your address. Try again in %s.", humanWait(secs))
	}
	subject, ok = s.authenticate(username, r.PostForm.Get("password"))
	if ok {
		s.limits.lockout.Reset(key)
		return subject, true, ""
	}
	if lock := s.limits.lockout.Fail(key, now); lock > 0 {
		s.log.Warn("sign-in locked after repeated failures", s.userAttr(username),
			"client", client, "lock", lock)
	}
	return "", false, ""
}

// lockoutKey keys the lockout by user name and client address together.
func lockoutKey(username, client string) string {
	return clientmeta.Truncate(username, 256) + "\x00" + client
}

// humanWait renders a wait in seconds for a person.
func humanWait(secs int) string {
	switch {
	case secs < 60:
		return strconv.Itoa(secs) + " seconds"
	case secs < 3600:
		m := (secs + 59) / 60
		return strconv.Itoa(m) + pluralS(m, " minute")
	}
	h := (secs + 3599) / 3600
	return strconv.Itoa(h) + pluralS(h, " hour")
}

func pluralS(n int, unit string) string {
	if n == 1 {
		return unit
	}
	return unit + "s"
}

func (s *Server) hookRateLimited(name string) {
	if f := s.cfg.OnRateLimited; f != nil {
		f(name)
	}
}
