package oauth

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mcp-authz/mcp-authz/registry"
)

var (
	anyFormRe = regexp.MustCompile(`(?s)<form method="post" action="([^"]*)">(.*?)</form>`)
	formStep  = regexp.MustCompile(`name="(step|client_id)" value="([^"]*)"`)
)

// consentsForm returns the action and fields of the form on a consents page
// whose step (or, for withdraw forms, client_id) is key.
func consentsForm(t testing.TB, base, page, key string) (string, url.Values) {
	t.Helper()
	for _, m := range anyFormRe.FindAllStringSubmatch(page, -1) {
		k := formStep.FindStringSubmatch(m[2])
		if k == nil || html.UnescapeString(k[2]) != key {
			continue
		}
		fields := url.Values{}
		for _, in := range inputRe.FindAllStringSubmatch(m[2], -1) {
			fields.Set(html.UnescapeString(in[1]), html.UnescapeString(in[2]))
		}
		action, err := url.Parse(html.UnescapeString(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := url.Parse(base)
		return b.ResolveReference(action).String(), fields
	}
	t.Fatalf("no form %q on the page:\n%s", key, page)
	return "", nil
}

// consentsLogin signs b in on the consents page and returns the list page.
func (e *testEnv) consentsLogin(b *browser) string {
	e.t.Helper()
	resp := b.get(e.issuer + "/consents")
	action, f := consentsForm(e.t, e.issuer, readBody(e.t, resp), stepLogin)
	f.Set("username", testUser)
	f.Set("password", testPassword)
	resp = b.post(action, f)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	resp = b.get(resp.Request.URL.ResolveReference(loc).String())
	page := readBody(e.t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Signed in as") {
		e.t.Fatalf("list after sign-in: %d\n%s", resp.StatusCode, page)
	}
	return page
}

func TestConsentWithdrawal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	other := e.register(map[string]any{"client_name": "Other <App>",
		"redirect_uris": []string{webRedirect}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}})["client_id"].(string)
	tok := e.codeTokens(client, webRedirect)
	otherTok := e.codeTokens(other, webRedirect)
	pendingCode, verifier := e.codeFor(client, webRedirect)

	b := e.browser()
	resp := b.get(e.issuer + "/consents")
	page := readBody(t, resp)
	checkPageHeaders(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Sign in to see") {
		t.Fatalf("consents without a session: %d\n%s", resp.StatusCode, page)
	}
	page = e.consentsLogin(b)
	for _, want := range []string{"Test App", "Other &lt;App&gt;", "<code>mcp:read</code>",
		client, "Sign out"} {
		if !strings.Contains(page, want) {
			t.Errorf("list lacks %q:\n%s", want, page)
		}
	}

	action, f := consentsForm(t, e.issuer, page, client)
	bad := url.Values{"csrf": {"forged"}, "client_id": {client}}
	if resp := b.post(action, bad); resp.StatusCode != http.StatusForbidden {
		t.Errorf("withdraw with a forged csrf token: %d, want 403", resp.StatusCode)
	}
	if resp := e.browser().post(action, f); resp.StatusCode != http.StatusForbidden {
		t.Errorf("withdraw from another browser: %d, want 403", resp.StatusCode)
	}
	if e.store.Consent(testUser, client) == nil {
		t.Fatalf("a refused withdrawal removed the consent")
	}

	resp = b.post(action, f)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/consents" {
		t.Fatalf("withdraw: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if e.store.Consent(testUser, client) != nil {
		t.Errorf("consent still stored")
	}
	if e.store.Consent(testUser, other) == nil {
		t.Errorf("the other client's consent went too")
	}
	resp, got := e.token(refreshForm(client, tok["refresh_token"].(string)), "", "")
	if resp.StatusCode != 400 || got["error"] != "invalid_grant" {
		t.Errorf("refresh after withdrawal: %d %v, want invalid_grant", resp.StatusCode, got)
	}
	resp, got = e.token(codeForm(client, pendingCode, verifier, webRedirect), "", "")
	if resp.StatusCode != 400 || got["error"] != "invalid_grant" {
		t.Errorf("code issued before withdrawal: %d %v, want invalid_grant", resp.StatusCode,
			got)
	}
	if resp, _ := e.token(refreshForm(other, otherTok["refresh_token"].(string)), "",
		""); resp.StatusCode != 200 {
		t.Errorf("the other client's refresh token stopped working: %d", resp.StatusCode)
	}

	// The next authorization asks again.
	_, challenge := pkce()
	resp = b.get(e.issuer + "/authorize?" + authParams(client, webRedirect, challenge).Encode())
	if page := readBody(t, resp); resp.StatusCode != 200 || !strings.Contains(page,
		`value="allow"`) {
		t.Errorf("authorization after withdrawal did not ask: %d", resp.StatusCode)
	}

	// Signing out ends the session.
	resp = b.get(e.issuer + "/consents")
	action, f = consentsForm(t, e.issuer, readBody(t, resp), stepLogout)
	if resp = b.post(action, f); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	resp = b.get(e.issuer + "/consents")
	if page := readBody(t, resp); !strings.Contains(page, "Sign in to see") {
		t.Errorf("still signed in after signing out")
	}
	resp = b.post(e.issuer+"/consents/revoke", url.Values{"client_id": {other}})
	if resp.StatusCode != http.StatusForbidden || e.store.Consent(testUser, other) == nil {
		t.Errorf("withdraw without a session: %d", resp.StatusCode)
	}
}

func TestConsentsPageRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withIssuerPath("/tenant"))
	b := e.browser()
	resp := b.get(e.issuer + "/consents")
	page := readBody(t, resp)
	action, f := consentsForm(t, e.issuer, page, stepLogin)
	if !strings.HasSuffix(action, "/tenant/consents") {
		t.Errorf("sign-in form posts to %s", action)
	}
	tests := []struct {
		name       string
		modify     func(url.Values)
		other      bool
		wantStatus int
		wantText   string
	}{
		{"wrong password", func(f url.Values) {
			f.Set("username", testUser)
			f.Set("password", "x")
		}, false, 200, "Wrong user name or password"},
		{"missing csrf", func(f url.Values) { f.Del("csrf") }, false, 403, "access_denied"},
		{"other browser", func(url.Values) {}, true, 403, "access_denied"},
		{"unknown step", func(f url.Values) { f.Set("step", "x") }, false, 400, "unknown step"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{}
			for k, v := range f {
				form[k] = v
			}
			tt.modify(form)
			bb := b
			if tt.other {
				bb = e.browser()
			}
			resp := bb.post(action, form)
			page := readBody(t, resp)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(page, tt.wantText) {
				t.Errorf("%d, want %d with %q:\n%s", resp.StatusCode, tt.wantStatus,
					tt.wantText, page)
			}
			if strings.Contains(page, "Signed in as") {
				t.Errorf("signed in")
			}
		})
	}
	resp = e.do(http.MethodPut, "/tenant/consents", nil, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", resp.StatusCode)
	}
}

func TestConsentsListClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) {
		c.StaticClients = []StaticClient{{ID: "configured-app", Name: "Configured App",
			RedirectURIs: []string{webRedirect}}}
	}))
	gone := e.register(publicMeta(webRedirect))
	e.codeTokens(gone["client_id"].(string), webRedirect)
	e.codeTokens("configured-app", webRedirect)
	if resp := e.manage(http.MethodDelete, gone, nil); resp.StatusCode != 204 {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	// A consent whose client vanished without taking it along (an
	// operator's edit, an older registry) is still listed, and marked.
	err := e.store.Update(t.Context(), func(tx *registry.Txn) error {
		return tx.PutConsent(&registry.Consent{Subject: testUser, ClientID: "vanished",
			Scope: "mcp:read"})
	})
	if err != nil {
		t.Fatal(err)
	}
	page := e.consentsLogin(e.browser())
	if strings.Contains(page, gone["client_id"].(string)) {
		t.Errorf("a deleted client's consent is listed")
	}
	if !strings.Contains(page, "<strong>Configured App</strong>") ||
		strings.Count(page, "(no longer registered)") != 1 ||
		!strings.Contains(page, "<strong>vanished</strong> <span class=\"muted\">(no longer") {
		t.Errorf("list:\n%s", page)
	}
}
