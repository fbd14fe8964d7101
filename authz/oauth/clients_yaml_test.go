package oauth

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/mcp-authz/mcp-authz/authz/cimd"
)

// TestClientSourcesYAML pins the configuration file names of ClientSources,
// which the command decodes from its YAML file.
func TestClientSourcesYAML(t *testing.T) {
	t.Parallel()
	const doc = `
clients:
  - id: open-webui
    name: Open WebUI
    secret_file: /run/secrets/open-webui
    redirect_uris: [https://webui.example.com/oauth/clients/x/callback]
    scopes: [mcp:read]
    grant_types: [authorization_code, refresh_token]
    token_endpoint_auth_method: client_secret_post
  - id: cli
    redirect_uris: [http://127.0.0.1/callback]
disable_client_id_metadata_documents: false
client_id_metadata_documents:
  timeout: 3s
  max_bytes: 32768
  cache_size: 100
  default_ttl: 10m
  min_ttl: 1m
  max_ttl: 12h
  error_ttl: 5s
  stale_if_error: 30m
  max_concurrent: 4
  allow_domains: [claude.ai, "*.example.com"]
  deny_domains: [evil.example.com]
  allow_private_addresses: false
  seed:
    https://claude.ai/oauth/mcp-oauth-client-metadata: '{"client_id": "x"}'
dev_mode: true
`
	var got ClientSources
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decoding: %v", err)
	}
	want := ClientSources{
		StaticClients: []StaticClient{{
			ID: "open-webui", Name: "Open WebUI", SecretFile: "/run/secrets/open-webui",
			RedirectURIs:            []string{"https://webui.example.com/oauth/clients/x/callback"},
			Scopes:                  []string{"mcp:read"},
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			TokenEndpointAuthMethod: "client_secret_post",
		}, {ID: "cli", RedirectURIs: []string{"http://127.0.0.1/callback"}}},
		CIMD: cimd.Options{
			Timeout: 3 * time.Second, MaxBytes: 32768, CacheSize: 100,
			DefaultTTL: 10 * time.Minute, MinTTL: time.Minute, MaxTTL: 12 * time.Hour,
			ErrorTTL: 5 * time.Second, StaleIfError: 30 * time.Minute, MaxConcurrent: 4,
			AllowDomains: []string{"claude.ai", "*.example.com"},
			DenyDomains:  []string{"evil.example.com"},
			Seed: map[string]string{
				"https://claude.ai/oauth/mcp-oauth-client-metadata": `{"client_id": "x"}`},
		},
		DevMode: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ClientSources (-want +got):\n%s", diff)
	}
}
