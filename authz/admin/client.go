package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Client calls a running server's admin API.
type Client struct {
	Endpoint Endpoint
	HTTP     *http.Client
}

// ListClients returns every registration.
func (c *Client) ListClients(ctx context.Context) ([]ClientView, error) {
	var out []ClientView
	return out, c.call(ctx, http.MethodGet, "/v1/clients", &out)
}

// ShowClient returns one registration.
func (c *Client) ShowClient(ctx context.Context, id string) (ClientView, error) {
	var out ClientView
	return out, c.call(ctx, http.MethodGet, "/v1/clients/"+url.PathEscape(id), &out)
}

// RevokeClient revokes one registration.
func (c *Client) RevokeClient(ctx context.Context, id string) (ClientView, error) {
	var out ClientView
	path := "/v1/clients/" + url.PathEscape(id) + "/revoke"
	return out, c.call(ctx, http.MethodPost, path, &out)
}

func (c *Client) call(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method,
		strings.TrimSuffix(c.Endpoint.URL, "/")+path, nil)
	if err != nil {
		return fmt.Errorf("admin %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Endpoint.Token)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode == http.StatusNotFound {
		return ErrNoClient
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("admin %s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("admin %s %s: decoding answer: %w", method, path, err)
	}
	return nil
}
