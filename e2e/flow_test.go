package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/mcp-authz/mcp-authz/examples/demo-mcp-server/server"
)

const callbackURI = "http://127.0.0.1:1/callback"

// stack is mcp-authz, the demo MCP server and the Envoy-shaped proxy.
type stack struct {
	authz    *authzProc
	proxyURL string
	resource string
}

func newStack(t *testing.T) *stack {
	t.Helper()
	mcpSrv := httptest.NewServer(server.Handler(slog.New(slog.DiscardHandler)))
	t.Cleanup(mcpSrv.Close)

	// The proxy's address is the resource, so it is fixed before mcp-authz
	// starts; the proxy dials mcp-authz lazily.
	proxy := httptest.NewUnstartedServer(nil)
	proxyURL := "http://" + proxy.Listener.Addr().String()
	resource := proxyURL + "/mcp"
	p := newAuthzProc(t, resource)
	proxy.Config.Handler = newEnvoyProxy(t, p.issuer(), p.grpcAddr(), mcpSrv.URL)
	proxy.Start()
	t.Cleanup(proxy.Close)
	p.start()
	return &stack{authz: p, proxyURL: proxyURL, resource: resource}
}

// tokenSource lets the test see the client's tokens and force a refresh.
type tokenSource struct {
	mu     sync.Mutex
	ctx    context.Context
	cfg    *oauth2.Config
	cur    oauth2.TokenSource
	latest *oauth2.Token
}

func (s *tokenSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, err := s.cur.Token()
	if err == nil {
		s.latest = tok
	}
	return tok, err
}

// expire makes the next Token call use the refresh token.
func (s *tokenSource) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = s.cfg.TokenSource(s.ctx, &oauth2.Token{RefreshToken: s.latest.RefreshToken})
}

func (s *tokenSource) token() *oauth2.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest
}

// TestGoSDKClientAcrossRestarts connects the Go MCP SDK's own OAuth client
// through the proxy, restarting mcp-authz between registration and the
// token exchange and again after tokens were issued.
func TestGoSDKClientAcrossRestarts(t *testing.T) {
	ctx := t.Context()
	st := newStack(t)

	restartsInFlow := 0
	ua := newUserAgent(callbackURI)
	ts := &tokenSource{}
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{
			Metadata: &oauthex.ClientRegistrationMetadata{
				RedirectURIs:            []string{callbackURI},
				TokenEndpointAuthMethod: "none",
				GrantTypes:              []string{"authorization_code", "refresh_token"},
				ClientName:              "e2e go-sdk client",
			},
		},
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			// The client is registered now: restart before the user sees
			// the authorization page, and again before the code exchange.
			st.authz.restart()
			q, err := ua.authorize(ctx, args.URL, "admin", "admin-password")
			if err != nil {
				return nil, err
			}
			st.authz.restart()
			restartsInFlow += 2
			return &auth.AuthorizationResult{
				Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss"),
			}, nil
		},
		NewTokenSource: func(ctx context.Context, cfg *oauth2.Config, tok *oauth2.Token) (oauth2.TokenSource, error) {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			ts.ctx, ts.cfg, ts.latest = ctx, cfg, tok
			ts.cur = cfg.TokenSource(ctx, tok)
			return ts, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: st.resource, OAuthHandler: handler,
	}, nil)
	if err != nil {
		t.Fatalf("connecting through the proxy: %v", err)
	}
	defer session.Close()
	if restartsInFlow != 2 {
		t.Fatalf("authorization ran %d restarts, want 2 (one flow)", restartsInFlow)
	}

	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("listing tools: %v", err)
	}
	if len(tools.Tools) != 3 {
		t.Errorf("got %d tools, want 3", len(tools.Tools))
	}
	callTool(t, session, "add", map[string]any{"a": 2, "b": 3}, "5")
	callTool(t, session, "whoami", nil, "subject=admin")

	// (b) After tokens were issued, a restart keeps the access token valid.
	first := ts.token()
	st.authz.restart()
	callTool(t, session, "echo", map[string]any{"text": "after restart"}, "after restart")
	if got := ts.token().AccessToken; got != first.AccessToken {
		t.Errorf("the access token changed across a restart; want the same token used")
	}

	// A refresh after another restart rotates the refresh token.
	st.authz.restart()
	ts.expire()
	callTool(t, session, "echo", map[string]any{"text": "refreshed"}, "refreshed")
	second := ts.token()
	if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh did not issue new tokens")
	}
	clientID := tokenClaim(t, second.AccessToken, "client_id")
	if got := refreshStatus(t, st.authz.issuer(), clientID, first.RefreshToken); got != http.StatusBadRequest {
		t.Errorf("rotated refresh token: status %d, want 400 invalid_grant", got)
	}

	// The flow shows in the metrics of the (restarted) process.
	metrics := scrape(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", st.authz.metricsPort))
	for _, series := range []string{
		`mcp_authz_decisions_total{reason="ok",result="allow"}`,
		`mcp_authz_tokens_issued_total{grant_type="refresh_token"}`,
		`mcp_authz_decision_duration_seconds_count`,
		`mcp_authz_wal_fsync_duration_seconds_count`,
	} {
		if metrics[series] <= 0 {
			t.Errorf("metric %s = %v after the flow, want > 0", series, metrics[series])
		}
	}

	// Revoking the client through the CLI shuts the door at once.
	if _, err := st.authz.cli(ctx, "clients", "revoke", clientID); err != nil {
		t.Fatal(err)
	}
	resp := rawMCPCall(t, st.resource, second.AccessToken)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("MCP call after revoke: status %d, want 401", resp.StatusCode)
	}
	challenge := resp.Header.Get("WWW-Authenticate")
	wantMeta := st.proxyURL + "/.well-known/oauth-protected-resource/mcp"
	if !strings.Contains(challenge, `resource_metadata="`+wantMeta+`"`) {
		t.Errorf("challenge %q lacks resource_metadata=%q", challenge, wantMeta)
	}

	// Nothing secret reached the logs, at debug level, across every restart.
	logs := st.authz.logText()
	for name, secret := range map[string]string{
		"first access token": first.AccessToken, "first refresh token": first.RefreshToken,
		"second access token": second.AccessToken, "second refresh token": second.RefreshToken,
		"admin password": "admin-password",
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the %s appears in the logs", name)
		}
	}
}

func callTool(t *testing.T, s *mcp.ClientSession, name string, args map[string]any, want string) {
	t.Helper()
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("calling %s: %v", name, err)
	}
	if res.IsError || len(res.Content) == 0 {
		t.Fatalf("calling %s: error result %+v", name, res)
	}
	got := res.Content[0].(*mcp.TextContent).Text
	if !strings.Contains(got, want) {
		t.Errorf("%s returned %q, want it to contain %q", name, got, want)
	}
}

// tokenClaim reads a claim from a JWT without verifying it (the test only
// needs to know which client it names).
func tokenClaim(t *testing.T, jwt, claim string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT")
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	s, _ := claims[claim].(string)
	return s
}

func refreshStatus(t *testing.T, issuer, clientID, refreshToken string) int {
	t.Helper()
	resp, err := http.PostForm(issuer+"/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refreshToken},
		"client_id": {clientID},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// rawMCPCall sends an MCP initialize request with the given bearer token.
func rawMCPCall(t *testing.T, endpoint, token string) *http.Response {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{` +
		`"protocolVersion":"2025-06-18","capabilities":{},` +
		`"clientInfo":{"name":"raw","version":"1"}}}`
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint,
		strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decodeSegment(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decoding JWT segment: %w", err)
	}
	return b, nil
}

// scrape reads a Prometheus text exposition into series -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
