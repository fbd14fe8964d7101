package oauth

import (
	"testing"

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
	h2, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		ClientIDMetadataDocumentConfig: &auth.ClientIDMetadataDocumentConfig{URL: id},
		RedirectURL:                    redirect,
		AuthorizationCodeFetcher:       e.sdkFetcher(),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, claims := e.sdkToken(t, h2, resource)
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
