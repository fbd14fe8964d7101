package oauth

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"slices"
	"strings"

	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// Page steps, sent in the hidden "step" field.
const (
	stepLogin   = "login"
	stepConsent = "consent"
)

// setPageHeaders forbids caching, framing, sniffing and referrers to other
// origins on every authorization page and redirect. The referrer policy is
// same-origin, not no-referrer, so that the pages' own form posts carry
// their Origin (origin.go).
func setPageHeaders(h http.Header) {
	noStore(h)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy",
		"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "+
			"frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "same-origin")
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
	// Unregistered marks the Scopes beyond the client's registered scope.
	Unregistered map[string]bool
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

// pageFor fills the page data of an authorization request, with the
// form's hidden fields.
func (s *Server) pageFor(r *http.Request, req authRequest, hidden []hiddenField) pageData {
	name := req.clientName
	if name == "" {
		name = req.clientID
	}
	d := pageData{
		Action:       r.URL.EscapedPath(),
		Hidden:       hidden,
		ClientName:   name,
		ClientID:     req.clientID,
		RedirectHost: redirectHost(req.redirectURI),
		Resource:     req.resource,
		Scopes:       req.scope,
	}
	if len(req.registered) > 0 {
		for _, sc := range req.scope {
			if !slices.Contains(req.registered, sc) {
				if d.Unregistered == nil {
					d.Unregistered = map[string]bool{}
				}
				d.Unregistered[sc] = true
			}
		}
	}
	s.describeClient(&d, req)
	return d
}

// renderLogin shows the login page of req. The form carries the request
// and csrf, a loginCSRF token (browser.go); nothing is stored.
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, req authRequest,
	csrf, msg string, status int) {
	hidden := append([]hiddenField{{"step", stepLogin}, {"csrf", csrf}}, req.formFields()...)
	d := s.pageFor(r, req, hidden)
	d.Title, d.Message = "Sign in", msg
	d.Username = strings.TrimSpace(r.PostForm.Get("username"))
	s.render(w, r, "login.html", status, d)
}

// renderConsent shows the consent page of the pending authorization p.
func (s *Server) renderConsent(w http.ResponseWriter, r *http.Request, p *pendingAuth,
	subject string) {
	d := s.pageFor(r, p.req, []hiddenField{
		{"step", stepConsent}, {"request", p.id}, {"csrf", p.csrf},
	})
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

// render executes the template name with d and answers it with status.
func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, status int,
	d any) {
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
	switch r.PostForm.Get("step") {
	case stepLogin:
		s.handleLogin(w, r)
	case stepConsent:
		s.handleConsent(w, r)
	default:
		s.renderError(w, r, newError(http.StatusBadRequest, errInvalidRequest, "unknown step"))
	}
}

// errForeignForm answers a form that was not shown to this browser.
var errForeignForm = newError(http.StatusForbidden, errAccessDenied,
	"this form does not belong to this browser session; "+
		"go back to the application and connect again")

// errPageExpired answers a form submitted too late.
var errPageExpired = newError(http.StatusBadRequest, errInvalidRequest,
	"this page has expired; go back to the application and connect again")

// handleLogin handles the login form: it checks that the form was shown to
// this browser, validates the authorization request it carries again, and
// on the right password signs the browser in and shows the consent page (or
// answers at once when the user has consented before).
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	f := r.PostForm
	binding := s.cookieValue(r)
	bindings := []string{binding}
	if sess := s.flows.session(binding, now); sess != nil {
		bindings = append(bindings, sess.prev) // a login form shown before sign-in
	}
	switch checkLoginCSRF(f.Get("csrf"), bindings, now, s.cfg.AuthorizeTTL) {
	case loginFormExpired:
		s.renderError(w, r, errPageExpired)
		return
	case loginFormForeign:
		s.log.Warn("login form refused: session or csrf token mismatch",
			"client_id", clientmeta.Truncate(f.Get("client_id"), 64))
		s.renderError(w, r, errForeignForm)
		return
	}
	req, fatal, rerr := s.parseAuthorize(r.Context(), f, "")
	if fatal != nil {
		s.renderError(w, r, fatal)
		return
	}
	if rerr != nil {
		s.redirectError(w, r, req, rerr)
		return
	}

	username := strings.TrimSpace(f.Get("username"))
	subject, ok, blocked := s.checkPassword(w, r, username) // rate limit, lockout
	if blocked != "" {
		s.renderLogin(w, r, req, f.Get("csrf"), blocked, http.StatusTooManyRequests)
		return
	}
	if !ok {
		s.log.Info("login failed", s.userAttr(username), "client_id", req.clientID)
		s.renderLogin(w, r, req, f.Get("csrf"), "Wrong user name or password.", http.StatusOK)
		return
	}
	sess := s.flows.newSession(binding, subject, now, s.cfg.SessionTTL)
	s.setSessionCookie(w, sess.id)
	s.log.Info("user logged in", "user", subject, "client_id", req.clientID)
	if req.prompt != promptConsent && s.consented(subject, req) {
		s.issueCode(w, r, req, subject, false)
		return
	}
	p := s.flows.addPending(req, sess.id, now, s.cfg.AuthorizeTTL)
	s.renderConsent(w, r, &p, subject)
}

// handleConsent handles the consent form of a pending authorization.
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	f := r.PostForm
	p := s.flows.pendingAuth(f.Get("request"), now)
	if p == nil {
		s.renderError(w, r, errPageExpired)
		return
	}
	sess := s.currentSession(r)
	if sess == nil || sess.id != p.sessionID || !equalSecret(f.Get("csrf"), p.csrf) {
		s.log.Warn("consent form refused: session or csrf token mismatch",
			"client_id", p.req.clientID)
		s.renderError(w, r, errForeignForm)
		return
	}
	if _, e := s.resolveClient(r.Context(), p.req.clientID, ""); e != nil {
		s.renderError(w, r, newError(http.StatusBadRequest, errInvalidClient,
			"the client is no longer registered"))
		return
	}
	choice := f.Get("consent")
	if choice != "allow" && choice != "deny" {
		s.renderError(w, r, newError(http.StatusBadRequest, errInvalidRequest,
			"choose allow or deny"))
		return
	}
	if s.flows.take(p.id, now) == nil {
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
