package oauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Browser binding. Every form of the authorization and consent pages is
// bound to the browser that was shown it, through the session cookie. Once
// the user has signed in, the cookie holds the id of a session in memory
// (flows.go). Before, it holds a random value that the server does not
// store: the login form carries the authorization request itself in hidden
// fields, and its CSRF token is an HMAC of the cookie value and of the time
// the page was shown. So a browser that has not signed in costs the server
// no memory, and a flood of authorization requests can neither sign users
// out nor expire the pages they are answering.
//
// Signing in replaces the cookie value with a new session id, which defeats
// session fixation; a login form shown before, in another tab, is still
// accepted through the session's record of the value it replaced.

// Session cookie names: the __Host- prefix needs Secure, so it is used only
// with an https issuer.
const (
	cookieSecure = "__Host-mcp-authz-session"
	cookiePlain  = "mcp-authz-session"
)

// bindingBytes is the size of the random cookie value of a browser that
// has not signed in.
const bindingBytes = sessionBytes

func (s *Server) cookieName() string {
	if s.secure {
		return cookieSecure
	}
	return cookiePlain
}

// cookieValue returns the browser's session cookie value, or "".
func (s *Server) cookieValue(r *http.Request) string {
	c, err := r.Cookie(s.cookieName())
	if err != nil {
		return ""
	}
	return c.Value
}

// currentSession returns the browser's live session, or nil.
func (s *Server) currentSession(r *http.Request) *session {
	v := s.cookieValue(r)
	if v == "" {
		return nil
	}
	return s.flows.session(v, s.now())
}

// browserBinding returns the value that binds forms to this browser and
// the browser's live session, if any. A browser without a cookie gets one
// with a new random value; nothing is stored.
func (s *Server) browserBinding(w http.ResponseWriter, r *http.Request) (string, *session) {
	if v := s.cookieValue(r); v != "" {
		return v, s.flows.session(v, s.now())
	}
	v := randomToken(bindingBytes)
	s.setSessionCookie(w, v)
	return v, nil
}

// setSessionCookie sets the session cookie to value: a session id, or the
// random binding of a browser that has not signed in.
func (s *Server) setSessionCookie(w http.ResponseWriter, value string) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName(),
		Value:    value,
		Path:     "/",
		MaxAge:   int(s.cfg.SessionTTL / time.Second),
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// formKey signs the pages' CSRF tokens. It lives as long as the process,
// like the sessions it protects.
var formKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
})

// formMAC returns the base64url HMAC of parts, each ended by a NUL byte.
func formMAC(parts ...string) string {
	m := hmac.New(sha256.New, formKey())
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// consentsCSRF is the CSRF token of the consent pages for a browser
// binding: an HMAC of it, so it needs no storage and changes on sign-in.
func consentsCSRF(binding string) string { return formMAC("consents", binding) }

// loginCSRF is the CSRF token of a login form shown at shown to the browser
// with binding: the time, then an HMAC of purpose, binding and time.
func loginCSRF(binding string, shown time.Time) string {
	ts := strconv.FormatInt(shown.Unix(), 10)
	return ts + "." + formMAC("login", binding, ts)
}

// Outcomes of checkLoginCSRF.
const (
	loginFormOK = iota
	loginFormForeign
	loginFormExpired
)

// checkLoginCSRF checks a login form's CSRF token against the browser's
// bindings (its cookie value, and the one its session replaced) and the
// form's lifetime ttl.
func checkLoginCSRF(token string, bindings []string, now time.Time, ttl time.Duration) int {
	ts, _, ok := strings.Cut(token, ".")
	shown, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil {
		return loginFormForeign
	}
	for _, b := range bindings {
		if b != "" && equalSecret(token, loginCSRF(b, time.Unix(shown, 0))) {
			if !now.Before(time.Unix(shown, 0).Add(ttl)) {
				return loginFormExpired
			}
			return loginFormOK
		}
	}
	return loginFormForeign
}
