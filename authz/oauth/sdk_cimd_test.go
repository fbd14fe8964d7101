package oauth

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// TestGoSDKClientMetadataDocument runs the Go MCP SDK's OAuth client with a
// Client ID Metadata Document instead of registration: the SDK sees
// client_id_metadata_document_supported, uses the document's URL as its
// client_id, and the server fetches the document from a TLS server (a
// loopback address, allowed for the test, with its certificate trusted).
func TestGoSDKClientMetadataDocument(t *testing.T) {
	t.Parallel()
	h := newDocHost(t)
	redirect := "http://127.0.0.1:55556/callback"
	id := h.publish("/oauth/mcp-client.json", "go-sdk cimd test", redirect)
	e := newEnv(t, withLocalResource, withDocHost(h))
	resource := e.srv.cfg.Resources[0].URL
	b := e.browser()
	h2, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		ClientIDMetadataDocumentConfig: &auth.ClientIDMetadataDocumentConfig{URL: id},
		RedirectURL:                    redirect,
		AuthorizationCodeFetcher: func(_ context.Context, args *auth.AuthorizationArgs) (
			*auth.AuthorizationResult, error) {
			loc, err := e.browserAuthorize(b, args.URL)
			if err != nil {
				return nil, err
			}
			q := loc.Query()
			return &auth.AuthorizationResult{
				Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss"),
			}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, resource, nil)
	challenge := &http.Response{
		StatusCode: http.StatusUnauthorized,
		Header: http.Header{"Www-Authenticate": {fmt.Sprintf(`Bearer resource_metadata=%q`,
			e.issuerOrigin()+"/.well-known/oauth-protected-resource/mcp")}},
		Body: http.NoBody,
	}
	if err := h2.Authorize(t.Context(), req, challenge); err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	ts, err := h2.TokenSource(t.Context())
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
	if claims.ClientID != id || claims.Audience != resource || claims.Subject != testUser {
		t.Errorf("claims %+v", claims)
	}
	if e.store.Client(id) != nil {
		t.Error("the document client was registered")
	}
	if len(e.store.Clients()) != 0 {
		t.Errorf("the SDK registered dynamically: %d clients", len(e.store.Clients()))
	}
}
