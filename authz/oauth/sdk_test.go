package oauth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
)

// withLocalResource protects <issuer>/mcp, so that the resource's metadata
// is served by the test server itself.
func withLocalResource(c *Config) {
	c.Resources[0].URL = c.Issuer + "/mcp"
}

// TestGoSDKClient runs the Go MCP SDK's own OAuth client against the server:
// resource metadata from the 401 challenge, authorization server discovery
// with its issuer and PKCE checks, dynamic registration, the authorization
// request (driven through the login and consent forms), the RFC 9207 iss
// check and the code exchange with the resource indicator.
func TestGoSDKClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		authMethod string
		issuerPath string
	}{
		{"public client", "none", ""},
		{"client_secret_post", "client_secret_post", ""},
		{"client_secret_basic", "client_secret_basic", ""},
		{"issuer with path", "none", "/tenant1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withIssuerPath(tt.issuerPath), withLocalResource)
			resource := e.srv.cfg.Resources[0].URL
			redirect := "http://127.0.0.1:55555/callback"
			h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
				DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{
					Metadata: &oauthex.ClientRegistrationMetadata{
						ClientName:              "go-sdk test",
						RedirectURIs:            []string{redirect},
						TokenEndpointAuthMethod: tt.authMethod,
						GrantTypes:              []string{"authorization_code", "refresh_token"},
					},
				},
				AuthorizationCodeFetcher: e.sdkFetcher(),
				RequestRefreshToken:      true,
			})
			if err != nil {
				t.Fatal(err)
			}
			tok, claims := e.sdkToken(t, h, resource)
			scopes := strings.Fields(claims.Scope)
			slices.Sort(scopes)
			if claims.Audience != resource || claims.Subject != testUser ||
				!slices.Equal(scopes, []string{"mcp:read", "mcp:write"}) {
				t.Errorf("claims %+v", claims)
			}
			if tok.RefreshToken == "" {
				t.Fatal("no refresh token")
			}
			c := e.store.RefreshToken(hashSecret(tok.RefreshToken))
			if c == nil || e.store.Client(c.ClientID).TokenEndpointAuthMethod != tt.authMethod {
				t.Errorf("refresh token record %+v", c)
			}
		})
	}
}

// sdkFetcher answers the SDK's authorization requests the way a browser
// would: through the login and consent forms, to the redirect.
func (e *testEnv) sdkFetcher() auth.AuthorizationCodeFetcher {
	b := e.browser()
	return func(_ context.Context, args *auth.AuthorizationArgs) (
		*auth.AuthorizationResult, error) {
		loc, err := e.browserAuthorize(b, args.URL)
		if err != nil {
			return nil, err
		}
		q := loc.Query()
		return &auth.AuthorizationResult{
			Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss"),
		}, nil
	}
}

// sdkToken has the SDK handler h answer the 401 that an MCP server behind
// mcp-authz gives for resource, and returns the token it obtains with the
// access token's verified claims.
func (e *testEnv) sdkToken(t *testing.T, h *auth.AuthorizationCodeHandler, resource string) (
	*oauth2.Token, *authz.AccessClaims) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, resource, nil)
	challenge := &http.Response{
		StatusCode: http.StatusUnauthorized,
		Header: http.Header{"Www-Authenticate": {fmt.Sprintf(
			`Bearer resource_metadata=%q`, e.issuerOrigin()+
				"/.well-known/oauth-protected-resource/"+
				resource[len(e.issuerOrigin())+1:])}},
		Body: http.NoBody,
	}
	if err := h.Authorize(t.Context(), req, challenge); err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	ts, err := h.TokenSource(t.Context())
	if err != nil || ts == nil {
		t.Fatalf("TokenSource: %v", err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	claims, _, err := e.tokens.Verify(tok.AccessToken, time.Now())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return tok, claims
}

// issuerOrigin is the scheme and host of the issuer.
func (e *testEnv) issuerOrigin() string {
	u, _ := url.Parse(e.issuer)
	return u.Scheme + "://" + u.Host
}

// browserAuthorize opens an authorization URL in the browser, logs in and
// consents as needed, and returns the redirect to the client.
func (e *testEnv) browserAuthorize(b *browser, authURL string) (*url.URL, error) {
	resp := b.get(authURL)
	for range 3 {
		if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
			resp.Body.Close()
			return url.Parse(resp.Header.Get("Location"))
		}
		page := readBody(e.t, resp)
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("authorization page: %d: %s", resp.StatusCode, page)
		}
		action, f := parseForm(e.t, authURL, page)
		if f.Has("username") {
			f.Set("username", testUser)
			f.Set("password", testPassword)
		} else {
			f.Set("consent", "allow")
		}
		resp = b.post(action, f)
	}
	return nil, fmt.Errorf("no redirect after three pages")
}
