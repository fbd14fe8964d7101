package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// oauthClient is a minimal public OAuth client driving mcp-authz's endpoints
// directly, for tests that need many clients and exact control over each
// step.
type oauthClient struct {
	issuer   string
	resource string
	http     *http.Client
}

func newOAuthClient(issuer, resource string) *oauthClient {
	return &oauthClient{issuer: issuer, resource: resource,
		http: &http.Client{Timeout: 10 * time.Second}}
}

// tokenAnswer is the token endpoint's answer, success or error.
type tokenAnswer struct {
	Status       int    `json:"-"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
}

// register registers a public client with the authorization_code and
// refresh_token grants and returns its id.
func (c *oauthClient) register(ctx context.Context, name string) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"client_name":                name,
		"redirect_uris":              []string{callbackURI},
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{"authorization_code", "refresh_token"},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.issuer+"/register",
		bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("register: status %d: %s", resp.StatusCode, b)
	}
	var out struct {
		ClientID string `json:"client_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	return out.ClientID, nil
}

// authorize runs the code flow with PKCE for clientID through ua and
// exchanges the code.
func (c *oauthClient) authorize(ctx context.Context, ua *userAgent, clientID string) (tokenAnswer, error) {
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	state := rand.Text()
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {callbackURI},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
		"state":                 {state},
		"resource":              {c.resource},
	}
	back, err := ua.authorize(ctx, c.issuer+"/authorize?"+q.Encode(), "admin", "admin-password")
	if err != nil {
		return tokenAnswer{}, err
	}
	if back.Get("state") != state || back.Get("code") == "" {
		return tokenAnswer{}, fmt.Errorf("authorization answered %v", back)
	}
	return c.token(ctx, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {back.Get("code")},
		"redirect_uri":  {callbackURI},
		"client_id":     {clientID},
		"code_verifier": {verifier},
		"resource":      {c.resource},
	})
}

// refresh uses a refresh token.
func (c *oauthClient) refresh(ctx context.Context, clientID, refreshToken string) (tokenAnswer, error) {
	return c.token(ctx, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refreshToken},
		"client_id": {clientID},
	})
}

// token posts to the token endpoint. A transport error is returned as an
// error; an OAuth error answer is returned in the tokenAnswer.
func (c *oauthClient) token(ctx context.Context, form url.Values) (tokenAnswer, error) {
	var ans tokenAnswer
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.issuer+"/token",
		strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return ans, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return ans, fmt.Errorf("token answer (status %d): %w", resp.StatusCode, err)
	}
	ans.Status = resp.StatusCode
	return ans, nil
}

// revoke revokes a token with RFC 7009 and reports whether it was
// acknowledged.
func (c *oauthClient) revoke(ctx context.Context, clientID, token string) error {
	form := url.Values{"token": {token}, "client_id": {clientID}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.issuer+"/revoke",
		strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revoke: status %d", resp.StatusCode)
	}
	return nil
}
