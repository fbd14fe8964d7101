package oauth

import (
	"context"
	"net/http"
	"strings"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/authz/cimd"
	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
	"github.com/mcp-authz/mcp-authz/registry"
)

// Consent withdrawal. A user remembers a consent per client by allowing it
// on the consent page; the consent covers the resource and the scopes allowed
// so far and spares the user the page next time. At <issuer>/consents the
// signed-in user (the same browser session as the authorization pages) lists
// these consents and withdraws any of them. Withdrawing deletes the consent,
// revokes every grant of that client for that user (its refresh tokens stop
// working and, through the grant's revocation, so do the access tokens minted
// from them) and stores a consent revocation (authz.ConsentRevocationKey) that
// the decision checks, so access tokens of grants without a refresh token die
// at once too. Codes not yet exchanged are refused at the token endpoint,
// which requires the consent they were issued under.

// Paths of the consent pages below the issuer.
const (
	pathConsents      = "/consents"
	pathConsentRevoke = "/consents/revoke"
	stepLogout        = "logout"
)

// consentRow is one remembered consent on the page.
type consentRow struct {
	ClientID   string
	ClientName string
	Scopes     []string
	Resource   string
	GrantedAt  string
	Deleted    bool
}

// consentsPage feeds templates/consents.html.
type consentsPage struct {
	Title        string
	Action       string
	RevokeAction string
	CSRF         string
	Subject      string
	Username     string
	Message      string
	Consents     []consentRow
}

// handleConsents serves the consent list: GET shows it (or a sign-in form),
// POST signs in or out.
func (s *Server) handleConsents(w http.ResponseWriter, r *http.Request) {
	setPageHeaders(w.Header())
	if !allowMethods(w, r, http.MethodGet, http.MethodHead, http.MethodPost) {
		return
	}
	binding, sess := s.browserBinding(w, r)
	if r.Method != http.MethodPost {
		s.renderConsents(w, r, binding, sess, "", http.StatusOK)
		return
	}
	if !s.checkConsentsForm(w, r, binding) {
		return
	}
	switch r.PostForm.Get("step") {
	case stepLogin:
		s.consentsLogin(w, r, binding, sess)
	case stepLogout:
		if sess != nil {
			s.flows.endSession(sess.id)
			s.log.Info("user logged out", "user", sess.subject)
		}
		s.setSessionCookie(w, randomToken(bindingBytes))
		s.seeOther(w, r.URL.EscapedPath())
	default:
		s.renderError(w, r, newError(http.StatusBadRequest, errInvalidRequest, "unknown step"))
	}
}

// consentsLogin signs the user in from the consent list's form.
func (s *Server) consentsLogin(w http.ResponseWriter, r *http.Request, binding string,
	sess *session) {
	username := strings.TrimSpace(r.PostForm.Get("username"))
	subject, ok, blocked := s.checkPassword(w, r, username)
	switch {
	case blocked != "":
		s.renderConsents(w, r, binding, sess, blocked, http.StatusTooManyRequests)
		return
	case !ok:
		s.log.Info("login failed", s.userAttr(username), "page", "consents")
		s.renderConsents(w, r, binding, sess, "Wrong user name or password.", http.StatusOK)
		return
	}
	sess = s.flows.newSession(binding, subject, s.now(), s.cfg.SessionTTL)
	s.setSessionCookie(w, sess.id)
	s.log.Info("user logged in", "user", subject, "page", "consents")
	s.seeOther(w, r.URL.EscapedPath())
}

// handleConsentRevoke withdraws the signed-in user's consent for one client.
func (s *Server) handleConsentRevoke(w http.ResponseWriter, r *http.Request) {
	setPageHeaders(w.Header())
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	sess := s.currentSession(r)
	if sess == nil {
		s.renderError(w, r, newError(http.StatusForbidden, errAccessDenied,
			"sign in on the authorizations page first"))
		return
	}
	if !s.checkConsentsForm(w, r, sess.id) {
		return
	}
	clientID := r.PostForm.Get("client_id")
	if clientID == "" {
		s.renderError(w, r, newError(http.StatusBadRequest, errInvalidRequest,
			"client_id is required"))
		return
	}
	grants, err := s.withdrawConsent(r.Context(), sess.subject, clientID)
	if err != nil {
		s.logStoreError("withdrawing consent", "user", sess.subject, "client_id", clientID,
			"err", err)
		s.renderError(w, r, storeError(err))
		return
	}
	s.log.Info("consent withdrawn", "user", sess.subject,
		"client_id", clientmeta.Truncate(clientID, 64), "grants_revoked", grants)
	s.seeOther(w, strings.TrimSuffix(r.URL.EscapedPath(), "/revoke"))
}

// withdrawConsent deletes subject's consent for clientID and revokes every
// grant of that client for that user that has a refresh token. It returns
// the number of grants revoked.
func (s *Server) withdrawConsent(ctx context.Context, subject, clientID string) (int, error) {
	now := s.now().UTC()
	var grants int
	err := s.store.Update(ctx, func(tx *registry.Txn) error {
		grants = 0
		if tx.Consent(subject, clientID) != nil {
			if err := tx.DeleteConsent(subject, clientID); err != nil {
				return err
			}
		}
		seen := map[string]bool{}
		for _, rt := range tx.RefreshTokensByClient(clientID) {
			if rt.Subject != subject || seen[rt.GrantID] {
				continue
			}
			seen[rt.GrantID] = true
			if err := revokeGrantTx(tx, rt.GrantID, now, s.revocationTTL()); err != nil {
				return err
			}
		}
		grants = len(seen)
		// Also every access token already issued to this user and client,
		// whether or not its grant has a refresh token.
		return tx.PutRevocation(&registry.Revocation{
			Key:       authz.ConsentRevocationKey(subject, clientID),
			CreatedAt: now, ExpiresAt: now.Add(s.revocationTTL()),
		})
	})
	return grants, err
}

// checkConsentsForm reads a posted form of the consent pages and checks its
// origin (origin.go) and its CSRF token against the browser binding
// (browser.go). On failure it answers and returns false.
func (s *Server) checkConsentsForm(w http.ResponseWriter, r *http.Request,
	binding string) bool {
	if e := parseFormBody(w, r); e != nil {
		s.renderError(w, r, e)
		return false
	}
	if !s.checkFormOrigin(w, r) {
		return false
	}
	if !equalSecret(r.PostForm.Get("csrf"), consentsCSRF(binding)) {
		s.log.Warn("consents form refused: csrf token mismatch")
		s.renderError(w, r, newError(http.StatusForbidden, errAccessDenied,
			"this form does not belong to this browser session; reload the page"))
		return false
	}
	return true
}

// renderConsents shows the consent list of the session's user, or the
// sign-in form when the browser has no session.
func (s *Server) renderConsents(w http.ResponseWriter, r *http.Request, binding string,
	sess *session, msg string, status int) {
	path := r.URL.EscapedPath()
	d := consentsPage{
		Title: "Your authorizations", Action: path, RevokeAction: path + "/revoke",
		CSRF: consentsCSRF(binding), Message: msg,
	}
	if sess != nil {
		d.Subject = sess.subject
	}
	if r.Method == http.MethodPost {
		d.Username = strings.TrimSpace(r.PostForm.Get("username"))
	}
	if d.Subject != "" {
		for _, c := range s.store.Consents(d.Subject) {
			row := consentRow{ClientID: c.ClientID, ClientName: c.ClientID,
				Resource:  c.Resource,
				GrantedAt: c.GrantedAt.UTC().Format("2006-01-02 15:04 UTC")}
			row.Scopes, _ = parseScope(c.Scope)
			name, known := s.consentClient(c.ClientID)
			if name != "" {
				row.ClientName = name
			}
			row.Deleted = !known
			d.Consents = append(d.Consents, row)
		}
	}
	s.render(w, r, "consents.html", status, d)
}

// consentClient returns the name of a consented client and whether it can
// still be used, from memory only: a configured client, a registered one,
// or a metadata document URL (shown by its URL, the document is not
// fetched for the page).
func (s *Server) consentClient(id string) (name string, known bool) {
	if sc := s.clients.static[id]; sc != nil {
		return sc.client.Name, true
	}
	c := s.store.Client(id)
	switch {
	case s.cimdEnabled() && cimd.IsClientIDURL(id):
		return "", c == nil || !c.Revoked()
	case c != nil:
		return c.Name, !c.Revoked()
	}
	return "", false
}

// seeOther redirects a form post to a page (POST-redirect-GET).
func (s *Server) seeOther(w http.ResponseWriter, location string) {
	w.Header().Set("Location", location)
	w.WriteHeader(http.StatusSeeOther)
}
