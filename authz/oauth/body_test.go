package oauth

import (
	"net/http"
	"strings"
	"testing"
)

// TestBodyTooLarge sends a 300 kB body to every endpoint that reads one:
// each answers 413 with its OAuth error code and a description naming the
// limit, as JSON to API clients and as the error page to browsers.
func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := e.register(map[string]any{
		"client_name": "Big Body", "redirect_uris": []string{"https://app.example/cb"},
		"token_endpoint_auth_method": "none",
	})
	manage := "/register/" + reg["client_id"].(string)
	bearer := "Bearer " + reg["registration_access_token"].(string)

	big := strings.Repeat("a", 300<<10)
	form := "application/x-www-form-urlencoded"
	const wantDesc = "the request body is larger than 65536 bytes"
	tests := []struct {
		name, method, path, ctype, body string
		hdr                             map[string]string
		wantCode                        string // "" for the HTML error page
	}{
		{"token", "POST", "/token", form, "grant_type=authorization_code&pad=" + big,
			nil, errInvalidRequest},
		{"revoke", "POST", "/revoke", form, "token=" + big, nil, errInvalidRequest},
		{"introspect", "POST", "/introspect", form, "token=" + big, nil, errInvalidRequest},
		{"authorize JSON", "POST", "/authorize", form, "step=login&pad=" + big,
			map[string]string{"Accept": "application/json"}, errInvalidRequest},
		{"authorize request", "POST", "/authorize", form, "client_id=x&pad=" + big,
			map[string]string{"Accept": "application/json"}, errInvalidRequest},
		{"authorize page", "POST", "/authorize", form, "step=consent&pad=" + big, nil, ""},
		{"consents page", "POST", "/consents", form, "step=login&pad=" + big, nil, ""},
		{"register", "POST", "/register", "application/json",
			`{"client_name":"` + big + `"}`, nil, errInvalidClientMetadata},
		{"register update", "PUT", manage, "application/json",
			`{"client_name":"` + big + `"}`, map[string]string{"Authorization": bearer},
			errInvalidClientMetadata},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			hdr := map[string]string{"Content-Type": tt.ctype}
			for k, v := range tt.hdr {
				hdr[k] = v
			}
			resp := e.do(tt.method, tt.path, strings.NewReader(tt.body), hdr)
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d, want 413", resp.StatusCode)
			}
			if tt.wantCode == "" {
				page := readBody(t, resp)
				ct := resp.Header.Get("Content-Type")
				if !strings.HasPrefix(ct, "text/html") || !strings.Contains(page, wantDesc) {
					t.Errorf("Content-Type %q, page does not say %q:\n%s", ct, wantDesc, page)
				}
				return
			}
			got := decodeJSON(t, resp)
			if got["error"] != tt.wantCode || got["error_description"] != wantDesc {
				t.Errorf("answer %v, want error %q with description %q", got, tt.wantCode,
					wantDesc)
			}
		})
	}
}

// TestBodyNotAForm checks that a form body that does not parse is a 400
// invalid_request that says so, not a size error.
func TestBodyNotAForm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{"/token", "/revoke", "/introspect"} {
		t.Run(path, func(t *testing.T) {
			e := e.with(t)
			resp := e.do("POST", path, strings.NewReader("client_id=%zz"),
				map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
			got := decodeJSON(t, resp)
			if resp.StatusCode != http.StatusBadRequest || got["error"] != errInvalidRequest ||
				got["error_description"] != "the request body is not a valid form" {
				t.Errorf("status %d, answer %v", resp.StatusCode, got)
			}
		})
	}
}
