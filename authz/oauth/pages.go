package oauth

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// Page steps, sent in the hidden "step" field.
const (
	stepLogin   = "login"
	stepConsent = "consent"
)

// setPageHeaders forbids caching, framing, referrers and sniffing on every
// authorization page and redirect.
func setPageHeaders(h http.Header) {
	noStore(h)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy",
		"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "+
			"frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}

// hiddenField is one <input type="hidden"> of a form.
type hiddenField struct{ Name, Value string }

// pageData feeds the templates.
type pageData struct {
	Title        string
	Action       string
	Hidden       []hiddenField
	ClientName   string
	ClientID     string
	RedirectHost string
	Resource     string
	Scopes       []string
	Subject      string
	Username     string
	Message      string
	ErrorCode    string
	// Where the client comes from (clients.go).
	ClientIsURL      bool // a client id metadata document: the name is unverified
	DevClient        bool // development mode's unregistered client
	Configured       bool // configured by the operator
	LoopbackRedirect bool // a document's or dev client's response goes to this computer
}

func (s *Server) pageFor(r *http.Request, p *pendingAuth, step string) pageData {
	name := p.req.clientName
	if name == "" {
		name = p.req.clientID
	}
	d := pageData{
		Action: r.URL.EscapedPath(),
		Hidden: []hiddenField{
			{"step", step}, {"request", p.id}, {"csrf", p.csrf},
		},
		ClientName:   name,
		ClientID:     p.req.clientID,
		RedirectHost: redirectHost(p.req.redirectURI),
		Resource:     p.req.resource,
		Scopes:       p.req.scope,
	}
	s.describeClient(&d, p.req)
	return d
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, p *pendingAuth,
	msg string, status int) {
	d := s.pageFor(r, p, stepLogin)
	d.Title, d.Message = "Sign in", msg
	d.Username = strings.TrimSpace(r.PostForm.Get("username"))
	s.render(w, r, "login.html", status, d)
}

func (s *Server) renderConsent(w http.ResponseWriter, r *http.Request, p *pendingAuth,
	subject string) {
	d := s.pageFor(r, p, stepConsent)
	d.Title, d.Subject = "Authorize access", subject
	s.render(w, r, "consent.html", http.StatusOK, d)
}

// renderError shows an error that must not be redirected: as JSON when the
// caller asks for JSON, else as a page.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, e *oauthError) {
	if wantsJSON(r) {
		writeOAuthError(w, e)
		return
	}
	s.render(w, r, "error.html", e.Status, pageData{
		Title: "Authorization failed", ErrorCode: e.Code, Message: e.Description,
	})
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, status int,
	d pageData) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, d); err != nil {
		s.log.Error("rendering page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// wantsJSON reports whether the request prefers JSON to HTML.
func wantsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "application/json") && !strings.Contains(a, "text/html")
}

// handleStep handles a submitted login or consent form.
func (s *Server) handleStep(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	f := r.PostForm
	p := s.flows.pendingAuth(f.Get("request"), now)
	if p == nil {
		s.renderError(w, r, newError(http.StatusBadRequest, errInvalidRequest,
			"this page has expired; go back to the application and connect again"))
		return
	}
	sess := s.currentSession(r)
	if sess == nil || sess.id != p.sessionID || !equalSecret(f.Get("csrf"), p.csrf) {
		s.log.Warn("authorization form refused: session or csrf token mismatch",
			"client_id", p.req.clientID)
		s.renderError(w, r, newError(http.StatusForbidden, errAccessDenied,
			"this form does not belong to this browser session; "+
				"go back to the application and connect again"))
		return
	}
	if _, e := s.resolveClient(r.Context(), p.req.clientID, ""); e != nil {
		s.renderError(w, r, newError(http.StatusBadRequest, errInvalidClient,
			"the client is no longer registered"))
		return
	}
	switch f.Get("step") {
	case stepLogin:
		s.handleLogin(w, r, p, sess)
	case stepConsent:
		s.handleConsent(w, r, p, sess)
	default:
		s.renderError(w, r, newError(http.StatusBadRequest, errInvalidRequest, "unknown step"))
	}
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request, p *pendingAuth,
	sess *session) {
	username := strings.TrimSpace(r.PostForm.Get("username"))
	subject, ok, blocked := s.checkPassword(w, r, username) // rate limit, lockout
	if blocked != "" {
		s.renderLogin(w, r, p, blocked, http.StatusTooManyRequests)
		return
	}
	if !ok {
		s.log.Info("login failed", s.userAttr(username), "client_id", p.req.clientID)
		if !s.flows.loginFailed(p.id) {
			s.renderError(w, r, newError(http.StatusForbidden, errAccessDenied,
				"too many failed sign-in attempts; go back to the application and try again"))
			return
		}
		s.renderLogin(w, r, p, "Wrong user name or password.", http.StatusOK)
		return
	}
	sess = s.flows.newSession(sess.id, subject, s.now(), s.cfg.SessionTTL)
	s.setSessionCookie(w, sess)
	s.log.Info("user logged in", "user", subject, "client_id", p.req.clientID)
	if p.req.prompt != promptConsent && s.consented(subject, p.req) {
		if s.flows.take(p.id, s.now()) != nil {
			s.issueCode(w, r, p.req, subject, false)
			return
		}
	}
	s.renderConsent(w, r, p, subject)
}

func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request, p *pendingAuth,
	sess *session) {
	if sess.subject == "" {
		s.renderLogin(w, r, p, "Please sign in first.", http.StatusOK)
		return
	}
	choice := r.PostForm.Get("consent")
	if choice != "allow" && choice != "deny" {
		s.renderError(w, r, newError(http.StatusBadRequest, errInvalidRequest,
			"choose allow or deny"))
		return
	}
	if s.flows.take(p.id, s.now()) == nil {
		s.renderError(w, r, newError(http.StatusBadRequest, errInvalidRequest,
			"this page was already answered or has expired"))
		return
	}
	if choice == "deny" {
		s.log.Info("consent denied", "user", sess.subject, "client_id", p.req.clientID)
		s.redirectError(w, r, p.req, newError(0, errAccessDenied, "the user denied access"))
		return
	}
	s.issueCode(w, r, p.req, sess.subject, true)
}

// Session cookie names: the __Host- prefix needs Secure, so it is used only
// with an https issuer.
const (
	cookieSecure = "__Host-mcp-authz-session"
	cookiePlain  = "mcp-authz-session"
)

func (s *Server) cookieName() string {
	if s.secure {
		return cookieSecure
	}
	return cookiePlain
}

// currentSession returns the browser's live session, or nil.
func (s *Server) currentSession(r *http.Request) *session {
	c, err := r.Cookie(s.cookieName())
	if err != nil || c.Value == "" {
		return nil
	}
	return s.flows.session(c.Value, s.now())
}

func (s *Server) setSessionCookie(w http.ResponseWriter, sess *session) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName(),
		Value:    sess.id,
		Path:     "/",
		MaxAge:   int(s.cfg.SessionTTL / time.Second),
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteLaxMode,
	})
}
