package oauth

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRegister(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantError  string
		// For accepted registrations: the answer's fields that must match.
		want       map[string]any
		wantSecret bool
	}{
		{
			name: "cursor three redirect URIs",
			body: `{"client_name":"Cursor","redirect_uris":[
				"cursor://anysphere.cursor-mcp/oauth/callback",
				"https://cursor.com/oauth/callback","http://localhost:8787/callback"],
				"token_endpoint_auth_method":"none",
				"grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`,
			wantStatus: 201,
			want: map[string]any{
				"client_name": "Cursor", "token_endpoint_auth_method": "none",
				"redirect_uris": []any{"cursor://anysphere.cursor-mcp/oauth/callback",
					"https://cursor.com/oauth/callback", "http://localhost:8787/callback"},
				"grant_types":    []any{"authorization_code", "refresh_token"},
				"response_types": []any{"code"},
			},
		},
		{
			name: "vs code loopback and device code grant",
			body: `{"client_name":"Visual Studio Code","client_uri":"https://code.visualstudio.com",
				"grant_types":["authorization_code","refresh_token",
				"urn:ietf:params:oauth:grant-type:device_code"],"response_types":["code"],
				"redirect_uris":["https://insiders.vscode.dev/redirect","https://vscode.dev/redirect",
				"http://localhost","http://127.0.0.1","http://localhost:33418","http://127.0.0.1:33418"],
				"scope":"mcp:read","token_endpoint_auth_method":"none","application_type":"native"}`,
			wantStatus: 201,
			want: map[string]any{
				"client_name": "Visual Studio Code", "client_uri": "https://code.visualstudio.com",
				"grant_types":      []any{"authorization_code", "refresh_token"},
				"application_type": "native", "scope": "mcp:read",
				"token_endpoint_auth_method": "none",
			},
		},
		{
			name: "claude.ai client_secret_post",
			body: `{"client_name":"Claude","redirect_uris":["https://claude.ai/api/mcp/auth_callback"],
				"token_endpoint_auth_method":"client_secret_post",
				"grant_types":["authorization_code","refresh_token"]}`,
			wantStatus: 201,
			want: map[string]any{
				"token_endpoint_auth_method": "client_secret_post",
				"client_secret_expires_at":   float64(0),
			},
			wantSecret: true,
		},
		{
			name:       "absent method defaults to client_secret_basic",
			body:       `{"redirect_uris":["https://app.example/cb"]}`,
			wantStatus: 201,
			want: map[string]any{
				"token_endpoint_auth_method": "client_secret_basic",
				"grant_types":                []any{"authorization_code"},
				"response_types":             []any{"code"},
			},
			wantSecret: true,
		},
		{
			name: "unknown metadata ignored",
			body: `{"redirect_uris":["http://[::1]:9000/cb"],"token_endpoint_auth_method":"none",
				"tos_uri":"https://x.example/tos","software_statement":"eyJ","x":{"y":[1,2]}}`,
			wantStatus: 201,
			want:       map[string]any{"redirect_uris": []any{"http://[::1]:9000/cb"}},
		},
		{"javascript scheme", `{"redirect_uris":["javascript:alert(1)"]}`,
			400, "invalid_redirect_uri", nil, false},
		{"data scheme", `{"redirect_uris":["data:text/html,hi"]}`,
			400, "invalid_redirect_uri", nil, false},
		{"file scheme", `{"redirect_uris":["file:///etc/passwd"]}`,
			400, "invalid_redirect_uri", nil, false},
		{"http non-loopback", `{"redirect_uris":["http://app.example/cb"]}`,
			400, "invalid_redirect_uri", nil, false},
		{"http localhost lookalike", `{"redirect_uris":["http://localhost.evil.example/cb"]}`,
			400, "invalid_redirect_uri", nil, false},
		{"fragment", `{"redirect_uris":["https://app.example/cb#frag"]}`,
			400, "invalid_redirect_uri", nil, false},
		{"user info", `{"redirect_uris":["https://user@app.example/cb"]}`,
			400, "invalid_redirect_uri", nil, false},
		{"relative", `{"redirect_uris":["/cb"]}`, 400, "invalid_redirect_uri", nil, false},
		{"one bad of several", `{"redirect_uris":["https://ok.example/cb","http://bad.example/cb"]}`,
			400, "invalid_redirect_uri", nil, false},
		{"no redirect URIs", `{"client_name":"x"}`, 400, "invalid_redirect_uri", nil, false},
		{"unsupported auth method",
			`{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`,
			400, "invalid_client_metadata", nil, false},
		{"no authorization_code grant",
			`{"redirect_uris":["https://a.example/cb"],"grant_types":["client_credentials"]}`,
			400, "invalid_client_metadata", nil, false},
		{"implicit response type",
			`{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}`,
			400, "invalid_client_metadata", nil, false},
		{"redirect_uris wrong type", `{"redirect_uris":"https://a.example/cb"}`,
			400, "invalid_client_metadata", nil, false},
		{"not an object", `["https://a.example/cb"]`, 400, "invalid_client_metadata", nil, false},
		{"trailing garbage", `{"redirect_uris":["https://a.example/cb"]} x`,
			400, "invalid_client_metadata", nil, false},
		{"bad application type",
			`{"redirect_uris":["https://a.example/cb"],"application_type":"desktop"}`,
			400, "invalid_client_metadata", nil, false},
		{"bad scope", `{"redirect_uris":["https://a.example/cb"],"scope":"a \"b"}`,
			400, "invalid_client_metadata", nil, false},
		{"bidi override in name",
			`{"redirect_uris":["https://a.example/cb"],"client_name":"Claude\u202e"}`,
			400, "invalid_client_metadata", nil, false},
		{"control character in name",
			`{"redirect_uris":["https://a.example/cb"],"client_name":"a\u0007b"}`,
			400, "invalid_client_metadata", nil, false},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			resp := e.do(http.MethodPost, "/register", strings.NewReader(tt.body),
				map[string]string{"Content-Type": "application/json; charset=utf-8"})
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			got := decodeJSON(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %v", resp.StatusCode, tt.wantStatus, got)
			}
			if tt.wantError != "" {
				if got["error"] != tt.wantError || got["error_description"] == "" {
					t.Errorf("error = %v, want %s with a description", got, tt.wantError)
				}
				return
			}
			for k, v := range tt.want {
				if diff := cmp.Diff(v, got[k]); diff != "" {
					t.Errorf("%s (-want +got):\n%s", k, diff)
				}
			}
			id, _ := got["client_id"].(string)
			if len(id) < 22 {
				t.Errorf("client_id %q shorter than 22 characters", id)
			}
			if _, ok := got["client_id_issued_at"].(float64); !ok {
				t.Errorf("client_id_issued_at missing: %v", got)
			}
			secret, _ := got["client_secret"].(string)
			if (secret != "") != tt.wantSecret {
				t.Errorf("client_secret = %q, want one: %v", secret, tt.wantSecret)
			}
			stored := e.store.Client(id)
			if stored == nil {
				t.Fatalf("client %q not stored", id)
			}
			if tt.wantSecret && (stored.SecretHash != hashSecret(secret) ||
				strings.Contains(stored.SecretHash, secret)) {
				t.Errorf("stored secret hash %q is not the SHA-256 of the secret", stored.SecretHash)
			}
		})
	}
}

func TestRegisterTransport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ok := `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none"}`
	tests := []struct {
		name, method, path, ctype, body string
		wantStatus                      int
	}{
		{"trailing slash is not redirected", "POST", "/register/", "application/json", ok, 201},
		{"form body", "POST", "/register", "application/x-www-form-urlencoded",
			"redirect_uris=https://a.example/cb", 415},
		{"no content type", "POST", "/register", "", ok, 415},
		{"GET", "GET", "/register", "", "", 405},
		{"too large", "POST", "/register", "application/json",
			`{"client_name":"` + strings.Repeat("a", 70<<10) + `"}`, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			hdr := map[string]string{}
			if tt.ctype != "" {
				hdr["Content-Type"] = tt.ctype
			}
			resp := e.do(tt.method, tt.path, strings.NewReader(tt.body), hdr)
			got := decodeJSON(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %v", resp.StatusCode, tt.wantStatus, got)
			}
			if tt.wantStatus >= 400 && got["error"] == nil {
				t.Errorf("error body without error: %v", got)
			}
		})
	}
}

func TestParseClientMetadataKeepsOnlySupported(t *testing.T) {
	t.Parallel()
	c, e := parseClientMetadata([]byte(`{"redirect_uris":["https://a.example/cb",
		"https://a.example/cb"],"grant_types":["refresh_token","implicit","authorization_code"],
		"response_types":["code","token"],"scope":"b  a b","contacts":["ops@a.example"]}`))
	if e != nil {
		t.Fatal(e)
	}
	got, _ := json.Marshal(clientInfoOf(c, ""))
	want := `{"client_id":"","client_id_issued_at":-62135596800,` +
		`"redirect_uris":["https://a.example/cb"],` +
		`"token_endpoint_auth_method":"client_secret_basic",` +
		`"grant_types":["authorization_code","refresh_token"],"response_types":["code"],` +
		`"scope":"b a","contacts":["ops@a.example"]}`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("client (-want +got):\n%s", diff)
	}
}
