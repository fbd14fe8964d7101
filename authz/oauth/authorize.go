package oauth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
	"github.com/mcp-authz/mcp-authz/registry"
)

// Authorization request limits.
const (
	maxStateLen   = 2048
	challengeLen  = 43 // BASE64URL(SHA-256(verifier)) without padding
	promptNone    = "none"
	promptLogin   = "login"
	promptConsent = "consent"
)

// authRequest is a validated authorization request.
type authRequest struct {
	clientID     string
	clientName   string
	redirectURI  string // where the response goes
	redirectSent string // redirect_uri as sent; "" when it was left out
	state        string
	scope        []string
	scopeSent    string   // scope as sent
	registered   []string // the scope the client registered, if any
	resource     string   // the configured resource URL, the token's audience
	challenge    string
	prompt       string
	kind         clientKind // where the client comes from (clients.go)
}

// handleAuthorize serves the authorization endpoint: GET (or POST without a
// step field) starts an authorization, POST with a step submits a page.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	setPageHeaders(w.Header())
	if !allowMethods(w, r, http.MethodGet, http.MethodHead, http.MethodPost) {
		return
	}
	if r.Method == http.MethodPost {
		if e := parseFormBody(w, r); e != nil {
			s.renderError(w, r, e)
			return
		}
		if r.PostForm.Has("step") {
			if !s.checkFormOrigin(w, r) {
				return
			}
			s.handleStep(w, r)
			return
		}
	}
	if secs, ok := s.allow(w, r, LimitAuthorize); !ok {
		s.renderError(w, r, newError(http.StatusTooManyRequests, errTemporarilyUnavailable,
			fmt.Sprintf("too many authorization requests from this address; "+
				"retry in %d seconds", secs)))
		return
	}
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		params = r.Form
	}
	req, fatal, rerr := s.parseAuthorize(r.Context(), params, DevUseAuthorize)
	if fatal != nil {
		s.log.Debug("authorization refused",
			"client_id", clientmeta.Truncate(params.Get("client_id"), 64),
			"err", fatal.Description)
		s.renderError(w, r, fatal)
		return
	}
	if rerr != nil {
		s.redirectError(w, r, req, rerr)
		return
	}
	s.startAuthorization(w, r, req)
}

// startAuthorization shows the login or consent page for a valid request, or
// answers at once when the browser is signed in and the user has consented.
// Only a signed-in browser leaves state in memory (browser.go).
func (s *Server) startAuthorization(w http.ResponseWriter, r *http.Request, req authRequest) {
	now := s.now()
	sess := s.currentSession(r)
	if sess != nil && req.prompt != promptLogin {
		if req.prompt != promptConsent && s.consented(sess.subject, req) {
			s.issueCode(w, r, req, sess.subject, false)
			return
		}
		if req.prompt == promptNone {
			s.redirectError(w, r, req, newError(0, errConsentRequired, "consent is required"))
			return
		}
		p := s.flows.addPending(req, sess.id, now, s.cfg.AuthorizeTTL)
		s.renderConsent(w, r, &p, sess.subject)
		return
	}
	if req.prompt == promptNone {
		s.redirectError(w, r, req, newError(0, errLoginRequired, "login is required"))
		return
	}
	binding, _ := s.browserBinding(w, r)
	s.renderLogin(w, r, req, loginCSRF(binding, now), "", http.StatusOK)
}

// formFields returns the hidden fields that carry req through the login
// form; parseAuthorize reads them back into the same request.
func (req *authRequest) formFields() []hiddenField {
	f := []hiddenField{
		{"response_type", "code"}, {"client_id", req.clientID},
		{"code_challenge", req.challenge}, {"code_challenge_method", "S256"},
		{"resource", req.resource},
	}
	for _, kv := range [][2]string{
		{"redirect_uri", req.redirectSent}, {"state", req.state},
		{"scope", req.scopeSent}, {"prompt", req.prompt},
	} {
		if kv[1] != "" {
			f = append(f, hiddenField{kv[0], kv[1]})
		}
	}
	return f
}

// parseAuthorize validates an authorization request. fatal is an error found
// before the client and redirect URI were verified: it is shown, never
// redirected. redirErr is sent to req.redirectURI. devUse names the use of
// a development mode client in its log line ("" for none).
func (s *Server) parseAuthorize(ctx context.Context, q url.Values, devUse string) (
	req authRequest, fatal, redirErr *oauthError) {
	bad := func(code, desc string) *oauthError { return newError(http.StatusBadRequest, code, desc) }
	if len(q["client_id"]) > 1 || len(q["redirect_uri"]) > 1 {
		return req, bad(errInvalidRequest, "client_id and redirect_uri must be sent once"), nil
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		return req, bad(errInvalidRequest, "client_id is required"), nil
	}
	rc, e := s.resolveClient(ctx, clientID, devUse)
	if e != nil {
		return req, e, nil
	}
	c := rc.Client
	req.clientID, req.clientName, req.kind = c.ID, c.Name, rc.kind
	req.redirectSent = q.Get("redirect_uri")
	switch {
	case req.redirectSent != "" && rc.redirectAllowed(req.redirectSent):
		req.redirectURI = req.redirectSent
	case req.redirectSent != "":
		return req, bad(errInvalidRequest,
			"redirect_uri is not registered for this client"), nil
	case len(c.RedirectURIs) == 1:
		req.redirectURI = c.RedirectURIs[0]
	case len(c.RedirectURIs) == 0:
		return req, bad(errInvalidRequest, "redirect_uri is required"), nil
	default:
		return req, bad(errInvalidRequest,
			"redirect_uri is required: the client registered several"), nil
	}
	if validateRedirectURI(req.redirectURI) != nil {
		// Registered before its scheme was refused (redirect.go).
		return req, bad(errInvalidRequest,
			"the registered redirect_uri is no longer allowed; register it again"), nil
	}

	// From here on errors go to the verified redirect URI.
	state := q.Get("state")
	if len(state) > maxStateLen || hasControl(state) || len(q["state"]) > 1 {
		return req, nil, bad(errInvalidRequest, "state is too long, repeated or not printable")
	}
	req.state = state
	for _, name := range []string{"response_type", "scope", "code_challenge",
		"code_challenge_method", "prompt"} {
		if len(q[name]) > 1 {
			return req, nil, bad(errInvalidRequest, name+" must be sent once")
		}
	}
	if len(c.GrantTypes) > 0 && !slices.Contains(c.GrantTypes, grantAuthorizationCode) {
		return req, nil, bad(errUnauthorizedClient,
			"the client is not registered for the authorization_code grant")
	}
	switch rt := q.Get("response_type"); rt {
	case "code":
	case "":
		return req, nil, bad(errInvalidRequest, "response_type is required")
	default:
		return req, nil, bad(errUnsupportedResponseType, "only response_type=code is supported")
	}
	if e := checkChallenge(q.Get("code_challenge"), q.Get("code_challenge_method")); e != nil {
		return req, nil, e
	}
	req.challenge = q.Get("code_challenge")
	if req.prompt, e = parsePrompt(q.Get("prompt")); e != nil {
		return req, nil, e
	}
	if req.resource, e = s.requestedResource(q["resource"]); e != nil {
		return req, nil, e
	}
	req.scopeSent = q.Get("scope")
	if req.scope, e = s.requestedScope(req.scopeSent, c, req.resource); e != nil {
		return req, nil, e
	}
	if e := rc.checkScope(req.scope); e != nil {
		return req, nil, e
	}
	req.registered, _ = parseScope(c.Scope)
	return req, nil, nil
}

// checkChallenge requires a PKCE S256 challenge (RFC 7636); plain is refused.
func checkChallenge(challenge, method string) *oauthError {
	bad := func(desc string) *oauthError {
		return newError(http.StatusBadRequest, errInvalidRequest, desc)
	}
	switch {
	case challenge == "":
		return bad("code_challenge is required (PKCE with S256)")
	case method == "":
		return bad("code_challenge_method is required and must be S256")
	case method != "S256":
		return bad("code_challenge_method must be S256")
	case len(challenge) != challengeLen || !isBase64URL(challenge):
		return bad("code_challenge must be the base64url SHA-256 of the verifier")
	}
	return nil
}

// parsePrompt keeps the prompt values this server acts on (OpenID Connect
// Core §3.1.2.1); unknown values are ignored.
func parsePrompt(p string) (string, *oauthError) {
	vals := strings.Fields(p)
	if slices.Contains(vals, promptNone) && len(vals) > 1 {
		return "", newError(http.StatusBadRequest, errInvalidRequest,
			"prompt=none cannot be combined with other values")
	}
	for _, v := range []string{promptNone, promptLogin, promptConsent} {
		if slices.Contains(vals, v) {
			return v, nil
		}
	}
	if slices.Contains(vals, "select_account") {
		return promptLogin, nil
	}
	return "", nil
}

// requestedResource resolves the RFC 8707 resource parameters to one
// configured resource.
func (s *Server) requestedResource(vals []string) (string, *oauthError) {
	if len(vals) == 0 {
		if len(s.cfg.Resources) == 1 {
			return s.cfg.Resources[0].URL, nil
		}
		return "", newError(http.StatusBadRequest, errInvalidRequest,
			"resource is required: this server protects several resources")
	}
	var found string
	for _, v := range vals {
		res, ok := s.cfg.Resource(v)
		switch {
		case !ok:
			return "", newError(http.StatusBadRequest, errInvalidTarget,
				"resource is not protected by this server")
		case found != "" && res.URL != found:
			return "", newError(http.StatusBadRequest, errInvalidTarget,
				"a token is issued for one resource at a time")
		}
		found = res.URL
	}
	return found, nil
}

// requestedScope validates the scope parameter against the resource and
// applies the default: the client's registered scope (within the resource's
// scopes), else the resource's required scopes.
//
// A registered client may ask for scopes beyond the scope it registered, as
// long as the resource offers them. RFC 7591 §2 has the registered scope
// list what the client can use, but with open registration that list is the
// client's own claim: whoever could ask for more could as well register
// again with more, so refusing would bound nothing. And MCP clients answer a
// 403 insufficient_scope by asking again for the union of the old and new
// scopes without registering again; refusing would strand them. What bounds
// the scope is the user's consent: a remembered consent covers only the
// scopes allowed before, so a step-up shows the consent page again, which
// lists every scope the code will carry and marks those beyond the
// registration. Configured clients are bounded by the scopes the operator
// gave them (rc.checkScope).
func (s *Server) requestedScope(raw string, c *registry.Client, resourceURL string) ([]string,
	*oauthError) {
	res, _ := s.cfg.Resource(resourceURL)
	toks, err := parseScope(raw)
	if err != nil {
		return nil, newError(http.StatusBadRequest, errInvalidScope, "scope: "+err.Error())
	}
	toks = slices.DeleteFunc(toks, func(t string) bool { return t == scopeOfflineAccess })
	if len(res.Scopes) > 0 {
		for _, t := range toks {
			if !slices.Contains(res.Scopes, t) {
				return nil, newError(http.StatusBadRequest, errInvalidScope,
					"scope "+t+" is not offered by the resource")
			}
		}
	}
	if len(toks) > 0 {
		return toks, nil
	}
	reg, _ := parseScope(c.Scope)
	for _, t := range reg {
		if t != scopeOfflineAccess && (len(res.Scopes) == 0 || slices.Contains(res.Scopes, t)) {
			toks = append(toks, t)
		}
	}
	if len(toks) > 0 {
		return toks, nil
	}
	return slices.Clone(res.RequiredScopes), nil
}

// consented reports whether subject's remembered consent for the client
// covers the request's scopes.
func (s *Server) consented(subject string, req authRequest) bool {
	c := s.store.Consent(subject, req.clientID)
	// A consent covers the one resource it was given for (the consent page
	// names it); consents stored before resources were recorded cover none.
	if c == nil || c.Resource != req.resource {
		return false
	}
	have, _ := parseScope(c.Scope)
	return scopeCovers(have, req.scope)
}

// issueCode stores a new authorization code (and the consent when remember
// is set) and redirects the browser to the client with it.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, req authRequest,
	subject string, remember bool) {
	code := randomToken(codeBytes)
	now := s.now().UTC()
	ac := &registry.AuthCode{
		Hash:          hashSecret(code),
		ClientID:      req.clientID,
		RedirectURI:   req.redirectSent,
		Subject:       subject,
		Scope:         joinScope(req.scope),
		Resource:      req.resource,
		CodeChallenge: req.challenge,
		GrantID:       randomToken(grantIDBytes),
		CreatedAt:     now,
		ExpiresAt:     now.Add(s.cfg.CodeTTL),
	}
	err := s.store.Update(r.Context(), func(tx *registry.Txn) error {
		if remember {
			scope := req.scope
			if old := tx.Consent(subject, req.clientID); old != nil &&
				old.Resource == req.resource {
				prev, _ := parseScope(old.Scope)
				scope = clientmeta.Dedupe(slices.Concat(prev, req.scope))
			}
			err := tx.PutConsent(&registry.Consent{
				Subject: subject, ClientID: req.clientID, Scope: joinScope(scope), GrantedAt: now,
				Resource: req.resource,
			})
			if err != nil {
				return err
			}
		}
		return tx.PutAuthCode(ac)
	})
	if err != nil {
		s.logStoreError("storing authorization code", "client_id", req.clientID, "err", err)
		s.redirectError(w, r, req, storeError(err))
		return
	}
	s.log.Info("authorization code issued", "client_id", req.clientID, "sub", subject,
		"scope", ac.Scope, "resource", ac.Resource, "grant_id", ac.GrantID,
		"code_fp", fingerprint(code))
	s.redirect(w, r, req.redirectURI, url.Values{
		"code": {code}, "state": {req.state}, "iss": {s.issuer},
	})
}

// redirectError sends an authorization error to the verified redirect URI
// (RFC 6749 §4.1.2.1, with iss per RFC 9207).
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, req authRequest,
	e *oauthError) {
	s.log.Debug("authorization error", "client_id", req.clientID, "error", e.Code,
		"err", e.Description)
	v := url.Values{"error": {e.Code}, "error_description": {e.Description},
		"iss": {s.issuer}}
	if req.state != "" {
		v.Set("state", req.state)
	}
	s.redirect(w, r, req.redirectURI, v)
}

// redirect sends the browser to target with params added to its query,
// leaving the registered URI's own query as it was written. Empty values are
// left out.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, target string,
	params url.Values) {
	for k, v := range params {
		if len(v) == 0 || v[0] == "" {
			delete(params, k)
		}
	}
	sep := "?"
	if i := strings.IndexByte(target, '?'); i >= 0 {
		sep = "&"
		if i == len(target)-1 || strings.HasSuffix(target, "&") {
			sep = ""
		}
	}
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	w.Header().Set("Location", target+sep+params.Encode())
	w.WriteHeader(status)
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// isBase64URL reports whether s uses only the base64url alphabet.
func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_') {
			return false
		}
	}
	return true
}
