package oauth

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// flowSizes returns how many sessions and pending authorizations s holds.
func flowSizes(s *Server) (sessions, pending int) {
	s.flows.mu.Lock()
	defer s.flows.mu.Unlock()
	return len(s.flows.sessions), len(s.flows.pending)
}

// TestAuthorizeFloodKeepsUsers floods the authorization endpoint with
// requests without a cookie, more than the in-memory bounds, while one user
// is on the consent page and another on the login page. Neither is signed
// out or loses the page, and the flood leaves nothing in memory.
func TestAuthorizeFloodKeepsUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // the authorize limit is off: as from many addresses
	client := e.publicClient(webRedirect)
	_, challenge := pkce()
	params := authParams(client, webRedirect, challenge)

	consenting := e.browser()
	consentAction, consentForm := e.loginToConsent(consenting, params)
	signingIn := e.browser()
	resp := signingIn.get(e.issuer + "/authorize?" + params.Encode())
	loginAction, loginForm := parseForm(t, e.issuer, readBody(t, resp))

	flood := "/authorize?" + params.Encode()
	for range maxPending + maxSessions/10 {
		if rec := e.do(http.MethodGet, flood, nil, nil); rec.StatusCode != http.StatusOK {
			t.Fatalf("flood request: %d", rec.StatusCode)
		}
	}
	if s, p := flowSizes(e.srv); s != 1 || p != 1 {
		t.Errorf("after the flood: %d sessions, %d pending; want the one user's 1 and 1", s, p)
	}

	consentForm.Set("consent", "allow")
	resp = consenting.post(consentAction, consentForm)
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther ||
		!strings.Contains(loc, "code=") {
		t.Fatalf("consent after the flood: %d Location %q", resp.StatusCode, loc)
	}
	// Still signed in: the remembered consent answers at once.
	resp = consenting.get(e.issuer + "/authorize?" + params.Encode())
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("signed-in user after the flood: %d, want 302 with a code", resp.StatusCode)
	}

	// The same user consented meanwhile: signing in answers at once.
	loginForm.Set("username", testUser)
	loginForm.Set("password", testPassword)
	resp = signingIn.post(loginAction, loginForm)
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther ||
		!strings.Contains(loc, "code=") {
		t.Errorf("login page shown before the flood: %d Location %q", resp.StatusCode, loc)
	}
}

// TestConsentsPageKeepsNoState checks that the consent list's sign-in page,
// shown to a browser without a session, stores nothing.
func TestConsentsPageKeepsNoState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for range 100 {
		e.do(http.MethodGet, "/consents", nil, nil)
	}
	if s, p := flowSizes(e.srv); s != 0 || p != 0 {
		t.Errorf("%d sessions, %d pending after anonymous page loads", s, p)
	}
}

// TestFlowBounds checks the per-session and per-subject bounds: one
// signed-in browser opening many authorizations, or one user signing in
// again and again, drops only its own oldest entries.
func TestFlowBounds(t *testing.T) {
	t.Parallel()
	now := time.Now()
	f := newFlowStore()
	alice := f.newSession("", "alice", now, time.Hour)
	kept := f.addPending(authRequest{clientID: "a"}, alice.id, now, time.Minute)
	mallory := f.newSession("", "mallory", now, time.Hour)
	for i := range 10 * maxPendingPerSession {
		f.addPending(authRequest{clientID: "m"}, mallory.id, now.Add(time.Duration(i)),
			time.Minute)
	}
	newest := f.addPending(authRequest{clientID: "m"}, mallory.id, now.Add(time.Hour),
		time.Minute)
	for i := range 10 * maxSessionsPerSubject {
		f.newSession("", "mallory", now.Add(time.Duration(i)), time.Hour)
	}

	perSession, perSubject := map[string]int{}, map[string]int{}
	for _, p := range f.pending {
		perSession[p.sessionID]++
	}
	for _, s := range f.sessions {
		perSubject[s.subject]++
	}
	if perSession[mallory.id] != maxPendingPerSession || perSession[alice.id] != 1 {
		t.Errorf("pending per session %v, want %d for the flooding one and 1", perSession,
			maxPendingPerSession)
	}
	if perSubject["mallory"] != maxSessionsPerSubject || perSubject["alice"] != 1 {
		t.Errorf("sessions per subject %v, want %d for the flooding one and 1", perSubject,
			maxSessionsPerSubject)
	}
	if f.pendingAuth(kept.id, now) == nil || f.session(alice.id, now) == nil {
		t.Errorf("the other user's session or pending authorization was dropped")
	}
	if f.pendingAuth(newest.id, now) == nil {
		t.Errorf("the newest pending authorization was dropped instead of the oldest")
	}
}

// TestLoginFormInAnotherTab checks that a login form shown before the
// browser signed in, in another tab, can still be used, and that a login
// form expires with AuthorizeTTL.
func TestLoginFormInAnotherTab(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	_, challenge := pkce()
	params := authParams(client, webRedirect, challenge)
	b := e.browser()
	resp := b.get(e.issuer + "/authorize?" + params.Encode())
	action, tab2 := parseForm(t, e.issuer, readBody(t, resp))
	e.loginToConsent(b, params) // tab 1
	tab2.Set("username", testUser)
	tab2.Set("password", testPassword)
	resp = b.post(action, tab2)
	if page := readBody(t, resp); resp.StatusCode != http.StatusOK ||
		!strings.Contains(page, `value="allow"`) {
		t.Errorf("login form of the other tab: %d\n%s", resp.StatusCode, page)
	}

	later := e.laterServer(e.srv.cfg.AuthorizeTTL + time.Second)
	resp = e.browser().get(e.issuer + "/authorize?" + params.Encode())
	action, f := parseForm(t, e.issuer, readBody(t, resp))
	f.Set("username", testUser)
	f.Set("password", testPassword)
	rec := later.serve(http.MethodPost, action, f, resp.Cookies())
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "expired") {
		t.Errorf("login form past AuthorizeTTL: %d\n%s", rec.Code, rec.Body)
	}
}

// serve sends form to s directly, with the given cookies, and returns the
// recorded answer.
func (s *Server) serve(method, target string, form url.Values,
	cookies []*http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}
