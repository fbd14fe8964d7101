package cimd

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-authz/mcp-authz/registry"
)

const testID = "https://app.example.com/client.json"

func TestParseDocument(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	full := `{"client_id":"` + testID + `","client_name":"Example App",` +
		`"client_uri":"https://app.example.com","logo_uri":"https://app.example.com/l.png",` +
		`"redirect_uris":["https://app.example.com/cb","https://app.example.com/cb",` +
		`"http://localhost/callback"],"grant_types":["refresh_token","authorization_code",` +
		`"urn:ietf:params:oauth:grant-type:device_code"],"response_types":["code"],` +
		`"token_endpoint_auth_method":"none","scope":"mcp:read  mcp:read bad\"tok",` +
		`"contacts":["ops@example.com",""],"software_id":"app","software_version":"1.2",` +
		`"application_type":"native","jwks_uri":"https://app.example.com/jwks",` +
		`"unknown":{"nested":[1,2]}}`
	got, err := ParseDocument(testID, []byte(full), nil, now)
	if err != nil {
		t.Fatalf("ParseDocument: %v", err)
	}
	want := &registry.Client{
		ID: testID, Name: "Example App", URI: "https://app.example.com",
		LogoURI:                 "https://app.example.com/l.png",
		RedirectURIs:            []string{"https://app.example.com/cb", "http://localhost/callback"},
		TokenEndpointAuthMethod: "none",
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		Scope:                   "mcp:read",
		Contacts:                []string{"ops@example.com"},
		SoftwareID:              "app", SoftwareVersion: "1.2", ApplicationType: "native",
		CreatedAt: now,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("client (-want +got):\n%s", diff)
	}
}

func TestParseDocumentDefaultsAndDrops(t *testing.T) {
	t.Parallel()
	doc := `{"client_id":"` + testID + `","redirect_uris":["https://app.example.com/cb"],` +
		`"client_name":"Evil\u202eName","logo_uri":"javascript:alert(1)",` +
		`"client_uri":"https://u@x.example/","application_type":"desktop"}`
	got, err := ParseDocument(testID, []byte(doc), nil, time.Time{})
	if err != nil {
		t.Fatalf("ParseDocument: %v", err)
	}
	want := &registry.Client{
		ID: testID, RedirectURIs: []string{"https://app.example.com/cb"},
		TokenEndpointAuthMethod: "none", GrantTypes: []string{"authorization_code"},
		ResponseTypes: []string{"code"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("client (-want +got):\n%s", diff)
	}
}

func TestParseDocumentRefusals(t *testing.T) {
	t.Parallel()
	redirect := `"redirect_uris":["https://app.example.com/cb"]`
	id := `"client_id":"` + testID + `"`
	strict := func(u string) error {
		if strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "http://localhost") {
			return errors.New("http only for localhost")
		}
		return nil
	}
	tests := []struct {
		name, doc, want string
	}{
		{"not an object", `[1]`, "not a JSON object"},
		{"empty", ``, "not a JSON object"},
		{"not JSON", `{"client_id":`, "not valid JSON"},
		{"wrong type", `{` + id + `,"redirect_uris":"x"}`, "redirect_uris has the wrong type"},
		{"no client_id", `{` + redirect + `}`, "client_id is missing"},
		{"other client_id", `{"client_id":"https://app.example.com/other",` + redirect + `}`,
			"client_id differs"},
		{"client_id with trailing slash", `{"client_id":"` + testID + `/",` + redirect + `}`,
			"client_id differs"},
		{"client_id not a string", `{"client_id":1,` + redirect + `}`, "wrong type"},
		{"client secret", `{` + id + `,` + redirect + `,"client_secret":"s"}`,
			"must not contain client_secret"},
		{"private_key_jwt", `{` + id + `,` + redirect +
			`,"token_endpoint_auth_method":"private_key_jwt"}`, "private_key_jwt is not supported"},
		{"shared secret method", `{` + id + `,` + redirect +
			`,"token_endpoint_auth_method":"client_secret_basic"}`, "cannot be used"},
		{"no redirect_uris", `{` + id + `}`, "redirect_uris is required"},
		{"empty redirect_uris", `{` + id + `,"redirect_uris":[]}`, "redirect_uris is required"},
		{"fragment redirect", `{` + id + `,"redirect_uris":["https://a.example/cb#x"]}`,
			"redirect URI"},
		{"relative redirect", `{` + id + `,"redirect_uris":["/cb"]}`, "redirect URI"},
		{"validator refuses", `{` + id + `,"redirect_uris":["http://app.example.com/cb"]}`,
			"http only for localhost"},
		{"too many redirects", `{` + id + `,"redirect_uris":[` +
			strings.Repeat(`"https://a.example/cb",`, 20) + `"https://a.example/cb"]}`,
			"at most 20"},
		{"no code grant", `{` + id + `,` + redirect + `,"grant_types":["refresh_token"]}`,
			"must include authorization_code"},
		{"no code response", `{` + id + `,` + redirect + `,"response_types":["token"]}`,
			"response_types must include code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseDocument(testID, []byte(tt.doc), strict, time.Time{})
			if c != nil || err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			e := wantKind(t, err, ErrInvalidDocument)
			if !strings.Contains(e.Public(), tt.want) {
				t.Errorf("error %q, want it to contain %q", e.Public(), tt.want)
			}
		})
	}
}
