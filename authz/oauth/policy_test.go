package oauth

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

const testIAT = "initial-access-token-0123456789"

func withConfig(f func(c *Config)) envOption { return envOption(f) }

func (e *testEnv) postRegister(body string, hdr map[string]string) (*http.Response,
	map[string]any) {
	e.t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	for k, v := range hdr {
		h[k] = v
	}
	resp := e.do(http.MethodPost, "/register", strings.NewReader(body), h)
	return resp, decodeJSON(e.t, resp)
}

func TestRegistrationModes(t *testing.T) {
	t.Parallel()
	body := `{"redirect_uris":["https://claude.ai/api/mcp/auth_callback"]}`
	tests := []struct {
		name          string
		mode          string
		auth          string
		wantStatus    int
		wantError     string
		wantChallenge string
	}{
		{"open", "", "", 201, "", ""},
		{"open ignores a token", RegistrationOpen, "Bearer whatever", 201, "", ""},
		{"token mode without token", RegistrationToken, "", 401, "invalid_token",
			`Bearer realm="registration"`},
		{"token mode with wrong token", RegistrationToken, "Bearer " + testIAT + "x", 401,
			"invalid_token", `Bearer realm="registration", error="invalid_token"`},
		{"token mode with Basic", RegistrationToken, "Basic " + testIAT, 401, "invalid_token",
			`Bearer realm="registration"`},
		{"token mode with token", RegistrationToken, "Bearer " + testIAT, 201, "", ""},
		{"token mode, second token, lower-case scheme", RegistrationToken,
			"bearer second-token-abcdefghijkl", 201, "", ""},
		{"closed", RegistrationClosed, "Bearer " + testIAT, 403, "access_denied", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			registered := 0
			e := newEnv(t, withConfig(func(c *Config) {
				c.Registration.Mode = tt.mode
				c.Registration.InitialAccessTokens = []string{testIAT,
					"second-token-abcdefghijkl"}
				c.OnRegistration = func() { registered++ }
			}))
			hdr := map[string]string{}
			if tt.auth != "" {
				hdr["Authorization"] = tt.auth
			}
			resp, got := e.postRegister(body, hdr)
			if resp.StatusCode != tt.wantStatus || (tt.wantError != "" &&
				got["error"] != tt.wantError) {
				t.Fatalf("answer %d %v, want %d %s", resp.StatusCode, got, tt.wantStatus,
					tt.wantError)
			}
			if h := resp.Header.Get("WWW-Authenticate"); h != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", h, tt.wantChallenge)
			}
			wantRegistered := map[bool]int{true: 1}[tt.wantStatus == 201]
			if registered != wantRegistered || len(e.store.Clients()) != wantRegistered {
				t.Errorf("OnRegistration called %d times, %d clients stored, want %d",
					registered, len(e.store.Clients()), wantRegistered)
			}
		})
	}
}

func TestRedirectHostPolicy(t *testing.T) {
	t.Parallel()
	cursor := []string{"cursor://anysphere.cursor-mcp/oauth/callback",
		"https://cursor.com/oauth/callback", "http://localhost:8787/callback"}
	tests := []struct {
		name        string
		allow, deny []string
		uris        []string
		wantRefused string // the URI the error must name; "" when accepted
	}{
		{"no lists", nil, nil, cursor, ""},
		{"allow all of cursor's", []string{"cursor:", "cursor.com", "loopback"}, nil,
			cursor, ""},
		{"allow list misses the scheme", []string{"cursor.com", "loopback"}, nil, cursor,
			cursor[0]},
		{"deny localhost", nil, []string{"localhost"}, cursor, cursor[2]},
		{"deny loopback by keyword", nil, []string{"loopback"},
			[]string{"http://127.0.0.2/cb"}, "http://127.0.0.2/cb"},
		{"deny wins over allow", []string{"*.example.com"}, []string{"bad.example.com"},
			[]string{"https://good.example.com/cb", "https://bad.example.com/cb"},
			"https://bad.example.com/cb"},
		{"suffix excludes the domain itself", []string{"*.example.com"}, nil,
			[]string{"https://example.com/cb"}, "https://example.com/cb"},
		{"suffix matches deeper hosts", []string{"*.example.com"}, nil,
			[]string{"https://a.b.example.com/cb"}, ""},
		{"suffix needs a dot", []string{"*.example.com"}, nil,
			[]string{"https://badexample.com/cb"}, "https://badexample.com/cb"},
		{"trailing dot is the same host", nil, []string{"evil.example"},
			[]string{"https://evil.example./cb"}, "https://evil.example./cb"},
		{"escaped host is refused", nil, []string{"evil.example"},
			[]string{"https://evil%2Eexample/cb"}, "https://evil%2Eexample/cb"},
		{"hosts ignore case and port", []string{"Claude.AI"}, nil,
			[]string{"https://CLAUDE.ai:443/api/mcp/auth_callback"}, ""},
		{"ipv6 literal", []string{"[::1]"}, nil, []string{"http://[::1]:3000/cb"}, ""},
		{"host pattern does not match a private-use URI", []string{"anysphere.cursor-mcp"},
			nil, cursor[:1], cursor[0]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withConfig(func(c *Config) {
				c.Registration.AllowRedirectHosts = tt.allow
				c.Registration.DenyRedirectHosts = tt.deny
			}))
			b, _ := json.Marshal(map[string]any{"redirect_uris": tt.uris,
				"token_endpoint_auth_method": "none"})
			resp, got := e.postRegister(string(b), nil)
			if tt.wantRefused == "" {
				if resp.StatusCode != 201 {
					t.Errorf("refused: %d %v", resp.StatusCode, got)
				}
				return
			}
			desc, _ := got["error_description"].(string)
			if resp.StatusCode != 400 || got["error"] != "invalid_redirect_uri" ||
				!strings.Contains(desc, `"`+tt.wantRefused+`"`) {
				t.Errorf("answer %d %v, want invalid_redirect_uri naming %s", resp.StatusCode,
					got, tt.wantRefused)
			}
		})
	}
}

func TestRegistrationLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) {
		c.Registration.MaxBodyBytes = 2048
		c.Registration.MaxRedirectURIs = 2
		c.Registration.MaxURILength = 100
		c.Registration.MaxTextLength = 20
	}))
	long := "https://a.example/" + strings.Repeat("p", 90)
	tests := []struct {
		name       string
		meta       map[string]any
		wantStatus int
		wantError  string
	}{
		{"within limits", map[string]any{"redirect_uris": []string{"https://a.example/1",
			"https://a.example/2"}, "client_name": strings.Repeat("n", 20)}, 201, ""},
		{"too many redirect URIs", map[string]any{"redirect_uris": []string{
			"https://a.example/1", "https://a.example/2", "https://a.example/3"}},
			400, "invalid_redirect_uri"},
		{"redirect URI too long", map[string]any{"redirect_uris": []string{long}},
			400, "invalid_redirect_uri"},
		{"client_uri too long", map[string]any{"redirect_uris": []string{"https://a.example/1"},
			"client_uri": long}, 400, "invalid_client_metadata"},
		{"name too long", map[string]any{"redirect_uris": []string{"https://a.example/1"},
			"client_name": strings.Repeat("n", 21)}, 400, "invalid_client_metadata"},
		{"body too large", map[string]any{"redirect_uris": []string{"https://a.example/1"},
			"x": strings.Repeat("x", 2048)}, 413, "invalid_client_metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			b, _ := json.Marshal(tt.meta)
			resp, got := e.postRegister(string(b), nil)
			if resp.StatusCode != tt.wantStatus || (tt.wantError != "" &&
				got["error"] != tt.wantError) {
				t.Errorf("answer %d %v, want %d %s", resp.StatusCode, got, tt.wantStatus,
					tt.wantError)
			}
		})
	}
}

func TestRegistrationDefaultLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	uris := make([]string, DefaultMaxRedirectURIs+1)
	for i := range uris {
		uris[i] = "https://a.example/" + strings.Repeat("x", i+1)
	}
	b, _ := json.Marshal(map[string]any{"redirect_uris": uris})
	if resp, got := e.postRegister(string(b), nil); resp.StatusCode != 400 {
		t.Errorf("%d redirect URIs: %d %v", len(uris), resp.StatusCode, got)
	}
	b, _ = json.Marshal(map[string]any{"redirect_uris": uris[:DefaultMaxRedirectURIs],
		"client_name": strings.Repeat("n", DefaultMaxTextLength)})
	if resp, got := e.postRegister(string(b), nil); resp.StatusCode != 201 {
		t.Errorf("at the default limits: %d %v", resp.StatusCode, got)
	}
}

func TestRegistrationPolicyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		p       RegistrationPolicy
		wantErr string
	}{
		{"defaults", RegistrationPolicy{}, ""},
		{"token mode with tokens", RegistrationPolicy{Mode: RegistrationToken,
			InitialAccessTokens: []string{testIAT}}, ""},
		{"all pattern kinds", RegistrationPolicy{
			AllowRedirectHosts: []string{"claude.ai", "*.example.com", "loopback", "cursor:",
				"127.0.0.1", "[::1]", "::1", "vscode.dev"},
			DenyRedirectHosts: []string{"com.example.app:"}}, ""},
		{"unknown mode", RegistrationPolicy{Mode: "shut"}, "registration mode"},
		{"token mode without tokens", RegistrationPolicy{Mode: RegistrationToken},
			"needs initial access tokens"},
		{"short token", RegistrationPolicy{Mode: RegistrationToken,
			InitialAccessTokens: []string{"short"}}, "initial access token 1"},
		{"token with space", RegistrationPolicy{Mode: RegistrationToken,
			InitialAccessTokens: []string{"0123456789 abcdefgh"}}, "initial access token 1"},
		{"bad host", RegistrationPolicy{AllowRedirectHosts: []string{"a b"}}, "allow list"},
		{"bad suffix", RegistrationPolicy{DenyRedirectHosts: []string{"*."}}, "deny list"},
		{"url instead of host", RegistrationPolicy{
			AllowRedirectHosts: []string{"https://claude.ai/"}}, "allow list"},
		{"bad scheme", RegistrationPolicy{DenyRedirectHosts: []string{"1x:"}}, "deny list"},
		{"tiny body", RegistrationPolicy{MaxBodyBytes: 10}, "body limit"},
		{"negative uris", RegistrationPolicy{MaxRedirectURIs: -1}, "redirect URI limit"},
		{"uri length above the matcher's", RegistrationPolicy{MaxURILength: 5000},
			"URI length limit"},
		{"tiny text", RegistrationPolicy{MaxTextLength: 3}, "text length limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.withDefaults().validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("validate = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
	if err := (RegistrationPolicy{Mode: RegistrationToken,
		InitialAccessTokens: []string{testIAT}}).withDefaults().validate(); err != nil {
		t.Fatal(err)
	}
	p := newRegistrationPolicy(RegistrationPolicy{InitialAccessTokens: []string{testIAT}})
	if p.InitialAccessTokens != nil || len(p.tokenHashes) != 1 {
		t.Errorf("compiled policy keeps clear tokens: %+v", p)
	}
	if !p.validInitialToken(testIAT) || p.validInitialToken(testIAT[1:]) ||
		p.validInitialToken("") {
		t.Errorf("validInitialToken answers wrongly")
	}
}

func TestClosedRegistrationMetadata(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{RegistrationOpen, RegistrationToken, RegistrationClosed} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withConfig(func(c *Config) {
				c.Registration.Mode = mode
				c.Registration.InitialAccessTokens = []string{testIAT}
			}))
			for _, p := range []string{"/.well-known/oauth-authorization-server",
				"/.well-known/openid-configuration"} {
				got := decodeJSON(t, e.do(http.MethodGet, p, nil, nil))
				ep, has := got["registration_endpoint"]
				if want := mode != RegistrationClosed; has != want ||
					(has && ep != e.issuer+"/register") {
					t.Errorf("%s: registration_endpoint %v, want present %v", p, ep, want)
				}
			}
		})
	}
}
