package oauth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/registry"
)

// publicMeta is the registration of a public client with refresh tokens.
func publicMeta(redirect string) map[string]any {
	return map[string]any{
		"client_name": "Test App", "redirect_uris": []string{redirect},
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{"authorization_code", "refresh_token"},
	}
}

// manage sends an RFC 7592 request for the registration reg, with its
// registration access token, and body as JSON when not nil.
func (e *testEnv) manage(method string, reg map[string]any, body map[string]any) *http.Response {
	e.t.Helper()
	return e.manageWith(method, reg["registration_client_uri"].(string),
		reg["registration_access_token"].(string), body)
}

func (e *testEnv) manageWith(method, uri, token string, body map[string]any) *http.Response {
	e.t.Helper()
	hdr := map[string]string{}
	if token != "" {
		hdr["Authorization"] = "Bearer " + token
	}
	var rd *strings.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
		hdr["Content-Type"] = "application/json"
	} else {
		rd = strings.NewReader("")
	}
	return e.do(method, uri, rd, hdr)
}

// updateBody is the metadata of reg as a client sends it back in an update:
// every field of the answer except the RFC 7592 ones.
func updateBody(reg map[string]any, changes map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range reg {
		switch k {
		case "registration_access_token", "registration_client_uri",
			"client_secret_expires_at", "client_id_issued_at":
			continue
		}
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

func TestRegistrationAccessToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withIssuerPath("/tenant"))
	reg := e.register(publicMeta(webRedirect))
	id := reg["client_id"].(string)
	rat, _ := reg["registration_access_token"].(string)
	if len(rat) < 43 {
		t.Fatalf("registration_access_token %q too short", rat)
	}
	if got, want := reg["registration_client_uri"], e.issuer+"/register/"+id; got != want {
		t.Errorf("registration_client_uri = %v, want %s", got, want)
	}
	c := e.store.Client(id)
	if c.RegistrationTokenHash != hashSecret(rat) {
		t.Errorf("stored registration token hash %q is not the SHA-256 of the token",
			c.RegistrationTokenHash)
	}
	dump, _ := json.Marshal(c)
	if strings.Contains(string(dump), rat) {
		t.Errorf("the registration access token is stored in clear: %s", dump)
	}

	resp := e.manage(http.MethodGet, reg, nil)
	got := decodeJSON(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d %v", resp.StatusCode, got)
	}
	checkTokenHeaders(t, resp)
	want := withChanges(reg, nil, "registration_access_token")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET answer (-want +got):\n%s", diff)
	}
}

// withChanges returns a copy of m with changes applied and the keys drop removed.
func withChanges(m map[string]any, changes map[string]any, drop ...string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for k, v := range changes {
		out[k] = v
	}
	for _, k := range drop {
		delete(out, k)
	}
	return out
}

func TestRegistrationManagementRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := e.register(publicMeta(webRedirect))
	other := e.register(publicMeta(webRedirect))
	uri := reg["registration_client_uri"].(string)
	rat := reg["registration_access_token"].(string)
	tests := []struct {
		name, method, uri, token string
		wantChallenge            string
	}{
		{"no token", "GET", uri, "", `Bearer realm="registration"`},
		{"wrong token", "GET", uri, "x" + rat,
			`Bearer realm="registration", error="invalid_token"`},
		{"another client's token", "GET", uri, other["registration_access_token"].(string),
			`Bearer realm="registration", error="invalid_token"`},
		{"unknown client", "GET", e.issuer + "/register/nobody", rat,
			`Bearer realm="registration", error="invalid_token"`},
		{"delete with wrong token", "DELETE", uri, "x",
			`Bearer realm="registration", error="invalid_token"`},
		{"update with wrong token", "PUT", uri, "x",
			`Bearer realm="registration", error="invalid_token"`},
	}
	var bodies []map[string]any
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			var body map[string]any
			if tt.method == "PUT" {
				body = updateBody(reg, nil)
			}
			resp := e.manageWith(tt.method, tt.uri, tt.token, body)
			got := decodeJSON(t, resp)
			if resp.StatusCode != http.StatusUnauthorized || got["error"] != "invalid_token" {
				t.Errorf("answer %d %v, want 401 invalid_token", resp.StatusCode, got)
			}
			if h := resp.Header.Get("WWW-Authenticate"); h != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", h, tt.wantChallenge)
			}
			if tt.token != "" {
				bodies = append(bodies, got)
			}
		})
	}
	// An unknown client and a wrong token read the same.
	for _, b := range bodies[1:] {
		if diff := cmp.Diff(bodies[0], b); diff != "" {
			t.Errorf("refusals differ (-first +other):\n%s", diff)
		}
	}
	if e.store.Client(reg["client_id"].(string)) == nil {
		t.Fatalf("a refused request removed the client")
	}

	t.Run("revoked client", func(t *testing.T) {
		e := e.with(t)
		r := e.register(publicMeta(webRedirect))
		err := e.store.Update(t.Context(), func(tx *registry.Txn) error {
			c := tx.Client(r["client_id"].(string)).Copy()
			c.RevokedAt = c.CreatedAt
			return tx.PutClient(c)
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp := e.manage(http.MethodGet, r, nil); resp.StatusCode != 401 {
			t.Errorf("GET of a revoked client: %d, want 401", resp.StatusCode)
		}
	})
	t.Run("method", func(t *testing.T) {
		e := e.with(t)
		resp := e.manage(http.MethodPost, reg, nil)
		if resp.StatusCode != http.StatusMethodNotAllowed ||
			resp.Header.Get("Allow") != "GET, PUT, DELETE" {
			t.Errorf("POST: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
	t.Run("preflight", func(t *testing.T) {
		e := e.with(t)
		resp := e.do(http.MethodOptions, uri, nil, map[string]string{
			"Origin": "http://localhost:6274", "Access-Control-Request-Method": "PUT"})
		h := resp.Header
		if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "DELETE") ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Errorf("preflight: %d %v", resp.StatusCode, h)
		}
	})
	t.Run("paths", func(t *testing.T) {
		e := e.with(t)
		for _, p := range []string{"/register/a/b", "/registerx"} {
			if resp := e.manageWith("GET", p, rat, nil); resp.StatusCode != 404 {
				t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
			}
		}
	})
}

func TestRegistrationUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name    string
		initial map[string]any
		changes map[string]any
		// wantStatus and wantError describe the answer; on success the
		// answer's fields in want must match, and wantSecret tells whether
		// a new secret is answered.
		wantStatus int
		wantError  string
		want       map[string]any
		wantSecret bool
	}{
		{name: "rename and add redirect URI", initial: publicMeta(webRedirect),
			changes: map[string]any{"client_name": "Renamed",
				"redirect_uris": []string{webRedirect, "http://127.0.0.1/cb"}},
			wantStatus: 200,
			want: map[string]any{"client_name": "Renamed",
				"redirect_uris": []any{webRedirect, "http://127.0.0.1/cb"}}},
		{name: "public becomes confidential", initial: publicMeta(webRedirect),
			changes:    map[string]any{"token_endpoint_auth_method": "client_secret_post"},
			wantStatus: 200, wantSecret: true,
			want: map[string]any{"token_endpoint_auth_method": "client_secret_post"}},
		{name: "omitted field is removed", initial: publicMeta(webRedirect),
			changes: map[string]any{"client_name": nil}, wantStatus: 200,
			want: map[string]any{"client_name": nil}},
		{name: "client_id missing", initial: publicMeta(webRedirect),
			changes: map[string]any{"client_id": nil}, wantStatus: 400,
			wantError: "invalid_client_metadata"},
		{name: "client_id differs", initial: publicMeta(webRedirect),
			changes: map[string]any{"client_id": "someone-else"}, wantStatus: 400,
			wantError: "invalid_client_metadata"},
		{name: "client chooses a secret", initial: publicMeta(webRedirect),
			changes: map[string]any{"client_secret": "mine"}, wantStatus: 400,
			wantError: "invalid_client_metadata"},
		{name: "invalid redirect URI", initial: publicMeta(webRedirect),
			changes:    map[string]any{"redirect_uris": []string{"http://evil.example/cb"}},
			wantStatus: 400, wantError: "invalid_redirect_uri"},
		{name: "unknown metadata ignored", initial: publicMeta(webRedirect),
			changes: map[string]any{"software_statement": "x", "tos_uri": 7}, wantStatus: 200,
			want: map[string]any{"client_name": "Test App"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			reg := e.register(tt.initial)
			before := e.store.Client(reg["client_id"].(string))
			resp := e.manage(http.MethodPut, reg, updateBody(reg, tt.changes))
			got := decodeJSON(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("PUT: %d %v, want %d", resp.StatusCode, got, tt.wantStatus)
			}
			if tt.wantError != "" {
				if got["error"] != tt.wantError {
					t.Errorf("error %v, want %s", got["error"], tt.wantError)
				}
				if after := e.store.Client(before.ID); after != before {
					t.Errorf("refused update changed the client")
				}
				return
			}
			for k, v := range tt.want {
				if diff := cmp.Diff(v, got[k]); diff != "" {
					t.Errorf("%s (-want +got):\n%s", k, diff)
				}
			}
			if _, ok := got["client_secret"]; ok != tt.wantSecret {
				t.Errorf("answer has client_secret %v, want %v", ok, tt.wantSecret)
			}
			checkRotated(t, e, reg, got)
			after := e.store.Client(before.ID)
			if !after.CreatedAt.Equal(before.CreatedAt) || after.UpdatedAt.IsZero() {
				t.Errorf("times after update: created %v updated %v", after.CreatedAt,
					after.UpdatedAt)
			}
			if tt.wantSecret && after.SecretHash != hashSecret(got["client_secret"].(string)) {
				t.Errorf("stored secret hash does not match the answered secret")
			}
		})
	}
}

// checkRotated checks that an update answered a new registration access
// token and that only the new one works.
func checkRotated(t *testing.T, e *testEnv, old, answer map[string]any) {
	t.Helper()
	newTok, _ := answer["registration_access_token"].(string)
	if newTok == "" || newTok == old["registration_access_token"] {
		t.Fatalf("update did not rotate the registration access token: %v", answer)
	}
	if answer["registration_client_uri"] != old["registration_client_uri"] {
		t.Errorf("registration_client_uri changed: %v", answer["registration_client_uri"])
	}
	if resp := e.manage(http.MethodGet, old, nil); resp.StatusCode != 401 {
		t.Errorf("old token after rotation: %d, want 401", resp.StatusCode)
	}
	if resp := e.manage(http.MethodGet, answer, nil); resp.StatusCode != 200 {
		t.Errorf("new token after rotation: %d, want 200", resp.StatusCode)
	}
}

func TestRegistrationUpdateSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := e.register(map[string]any{
		"redirect_uris": []string{webRedirect}, "token_endpoint_auth_method": "client_secret_post",
	})
	id, secret := reg["client_id"].(string), reg["client_secret"].(string)
	tokenOK := func(method, s string) bool {
		t.Helper()
		code, verifier := e.codeFor(id, webRedirect)
		f := codeForm(id, code, verifier, webRedirect)
		user := ""
		switch method {
		case authSecretPost:
			f.Set("client_secret", s)
		case authSecretBasic:
			user = id
		}
		resp, _ := e.token(f, user, s)
		return resp.StatusCode == http.StatusOK
	}

	// The current secret may be sent back and is kept (and not answered).
	resp := e.manage(http.MethodPut, reg, updateBody(reg, map[string]any{
		"client_secret": secret, "token_endpoint_auth_method": "client_secret_basic"}))
	got := decodeJSON(t, resp)
	if resp.StatusCode != 200 || got["client_secret"] != nil {
		t.Fatalf("update keeping the secret: %d %v", resp.StatusCode, got)
	}
	if !tokenOK(authSecretBasic, secret) {
		t.Errorf("kept secret refused with the new method")
	}
	if tokenOK(authSecretPost, secret) {
		t.Errorf("the old method still works")
	}

	// Becoming public drops the secret.
	reg = got
	resp = e.manage(http.MethodPut, reg, updateBody(reg,
		map[string]any{"token_endpoint_auth_method": "none"}))
	got = decodeJSON(t, resp)
	if resp.StatusCode != 200 || got["client_secret_expires_at"] != nil {
		t.Fatalf("update to public: %d %v", resp.StatusCode, got)
	}
	if c := e.store.Client(id); c.SecretHash != "" {
		t.Errorf("public client kept a secret hash")
	}
	if !tokenOK(authNone, "") {
		t.Errorf("public client refused at the token endpoint")
	}
}

func TestRegistrationUpdateAppliesPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.Registration.DenyRedirectHosts = []string{"evil.example"}
		c.Registration.MaxRedirectURIs = 2
	})
	reg := e.register(publicMeta(webRedirect))
	for name, uris := range map[string][]string{
		"deny list": {"https://evil.example/cb"},
		"too many":  {webRedirect, "https://a.example/1", "https://a.example/2"},
	} {
		t.Run(name, func(t *testing.T) {
			e := e.with(t)
			resp := e.manage(http.MethodPut, reg, updateBody(reg,
				map[string]any{"redirect_uris": uris}))
			if got := decodeJSON(t, resp); resp.StatusCode != 400 ||
				got["error"] != "invalid_redirect_uri" {
				t.Errorf("update: %d %v, want 400 invalid_redirect_uri", resp.StatusCode, got)
			}
		})
	}
}

func TestRegistrationDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.decider()
	reg := e.register(publicMeta(webRedirect))
	id := reg["client_id"].(string)
	tok := e.codeTokens(id, webRedirect)
	pendingCode, verifier := e.codeFor(id, webRedirect)

	resp := e.manage(http.MethodDelete, reg, nil)
	if body := readBody(t, resp); resp.StatusCode != http.StatusNoContent || body != "" {
		t.Fatalf("DELETE: %d %q, want 204 without a body", resp.StatusCode, body)
	}
	if e.store.Client(id) != nil || e.store.Consent(testUser, id) != nil ||
		len(e.store.RefreshTokensByClient(id)) != 0 {
		t.Errorf("client, consent or refresh tokens left after DELETE")
	}
	if resp := e.manage(http.MethodGet, reg, nil); resp.StatusCode != 401 {
		t.Errorf("GET after DELETE: %d, want 401", resp.StatusCode)
	}
	if resp := e.manage(http.MethodDelete, reg, nil); resp.StatusCode != 401 {
		t.Errorf("second DELETE: %d, want 401", resp.StatusCode)
	}
	// Everything issued to the client stops working.
	if r := e.decideWith(d, tok["access_token"].(string)); r != authz.ReasonUnknownClient {
		t.Errorf("access token after DELETE: %s", r)
	}
	resp, got := e.token(refreshForm(id, tok["refresh_token"].(string)), "", "")
	if resp.StatusCode != 401 || got["error"] != "invalid_client" {
		t.Errorf("refresh after DELETE: %d %v, want 401 invalid_client", resp.StatusCode, got)
	}
	resp, got = e.token(codeForm(id, pendingCode, verifier, webRedirect), "", "")
	if resp.StatusCode != 401 || got["error"] != "invalid_client" {
		t.Errorf("code after DELETE: %d %v, want 401 invalid_client", resp.StatusCode, got)
	}
	_, challenge := pkce()
	rec := e.do(http.MethodGet, "/authorize?"+authParams(id, webRedirect, challenge).Encode(),
		nil, nil)
	if rec.StatusCode != 400 || rec.Header.Get("Location") != "" {
		t.Errorf("authorize after DELETE: %d Location %q", rec.StatusCode,
			rec.Header.Get("Location"))
	}
}

// TestManagementRaceWithRotation checks that a request authorized with a
// token that a concurrent update rotated away is refused.
func TestManagementRaceWithRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := e.register(publicMeta(webRedirect))
	stale := e.store.Client(reg["client_id"].(string))
	if resp := e.manage(http.MethodPut, reg, updateBody(reg, nil)); resp.StatusCode != 200 {
		t.Fatalf("update: %d", resp.StatusCode)
	}
	for _, method := range []string{http.MethodPut, http.MethodDelete} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(method, "/register/"+stale.ID,
			strings.NewReader(mustJSON(updateBody(reg, nil))))
		r.Header.Set("Content-Type", "application/json")
		if method == http.MethodPut {
			e.srv.updateRegistration(w, r, stale)
		} else {
			e.srv.deleteRegistration(w, r, stale)
		}
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s with a rotated token: %d, want 401", method, w.Code)
		}
	}
	if e.store.Client(stale.ID) == nil {
		t.Errorf("the client was deleted with a rotated token")
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// FuzzParseUpdate checks that any update body either is refused with an
// RFC 7591 error or yields a client with valid redirect URIs, for the
// client's own id, without a client-chosen secret.
func FuzzParseUpdate(f *testing.F) {
	f.Add([]byte(`{"client_id":"abc","redirect_uris":["https://a.example/cb"]}`))
	f.Add([]byte(`{"client_id":"abc","client_secret":"s","redirect_uris":["http://[::1]/"],` +
		`"token_endpoint_auth_method":"client_secret_post"}`))
	f.Add([]byte(`{"client_id":7}`))
	f.Add([]byte(`{"client_id":"abc","redirect_uris":["https://evil.example/cb"]}`))
	f.Add([]byte(`{"client_id":"abc","redirect_uris":["https://EVIL.example.:8443/cb"]}`))
	s := &Server{policy: newRegistrationPolicy(RegistrationPolicy{
		DenyRedirectHosts: []string{"evil.example"}}.withDefaults())}
	c := &registry.Client{ID: "abc", SecretHash: hashSecret("s")}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, e := s.parseUpdate(body, c)
		if e != nil {
			if n != nil || e.Status != 400 ||
				(e.Code != errInvalidClientMetadata && e.Code != errInvalidRedirectURI) {
				t.Fatalf("bad refusal %+v, client %+v", e, n)
			}
			return
		}
		var ids struct {
			ClientID     string  `json:"client_id"`
			ClientSecret *string `json:"client_secret"`
		}
		if err := json.Unmarshal(body, &ids); err != nil || ids.ClientID != c.ID ||
			(ids.ClientSecret != nil && *ids.ClientSecret != "s") {
			t.Fatalf("accepted %s", body)
		}
		for _, u := range n.RedirectURIs {
			// Host patterns govern web redirects; a private-use scheme
			// (s://evil.example/) opens an app, whatever its "host".
			pu, _ := url.Parse(u)
			web := strings.EqualFold(pu.Scheme, "http") || strings.EqualFold(pu.Scheme, "https")
			if validateRedirectURI(u) != nil || web && strings.EqualFold(
				strings.TrimSuffix(pu.Hostname(), "."), "evil.example") {
				t.Fatalf("accepted redirect URI %q", u)
			}
		}
		if n.ID != "" || n.SecretHash != "" || n.RegistrationTokenHash != "" {
			t.Fatalf("parsed client carries server-set fields: %+v", n)
		}
	})
}
