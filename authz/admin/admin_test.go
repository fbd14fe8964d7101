package admin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-authz/mcp-authz/registry"
)

func openStore(t *testing.T) *registry.Store {
	t.Helper()
	s, err := registry.Open(t.Context(), t.TempDir(), registry.Options{
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func seed(t *testing.T, s *registry.Store) {
	t.Helper()
	now := time.Now().UTC()
	err := s.Update(t.Context(), func(tx *registry.Txn) error {
		for _, c := range []*registry.Client{
			{ID: "a", Name: "Alpha", RedirectURIs: []string{"https://a/cb"},
				TokenEndpointAuthMethod: "client_secret_post", SecretHash: "x", CreatedAt: now},
			{ID: "b", RedirectURIs: []string{"http://127.0.0.1/cb"},
				TokenEndpointAuthMethod: "none", CreatedAt: now},
		} {
			if err := tx.PutClient(c); err != nil {
				return err
			}
		}
		return tx.PutRefreshToken(&registry.RefreshToken{
			Hash: "h1", GrantID: "g1", ClientID: "a", Subject: "admin",
			Resource: "https://r/mcp", CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAPI(t *testing.T) {
	store := openStore(t)
	seed(t, store)
	srv := httptest.NewServer(NewHandler(store, "tok", slog.New(slog.DiscardHandler)))
	defer srv.Close()
	c := &Client{Endpoint: Endpoint{URL: srv.URL, Token: "tok"}}
	ctx := t.Context()

	list, err := c.ListClients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, v := range list {
		ids = append(ids, v.ID)
	}
	if diff := cmp.Diff([]string{"a", "b"}, ids); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}

	a, err := c.ShowClient(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if !a.HasSecret || a.RefreshTokens != 1 || a.Name != "Alpha" || !a.RevokedAt.IsZero() {
		t.Errorf("show a = %+v", a)
	}

	rev, err := c.RevokeClient(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if rev.RevokedAt.IsZero() || rev.RefreshTokens != 0 {
		t.Errorf("after revoke: %+v, want revoked with no active refresh token", rev)
	}
	if !store.Client("a").Revoked() || store.RefreshToken("h1").RevokedAt.IsZero() {
		t.Errorf("store does not show the revocation")
	}

	if _, err := c.ShowClient(ctx, "nope"); !errors.Is(err, ErrNoClient) {
		t.Errorf("show unknown: %v, want ErrNoClient", err)
	}
	if _, err := c.RevokeClient(ctx, "nope"); !errors.Is(err, ErrNoClient) {
		t.Errorf("revoke unknown: %v, want ErrNoClient", err)
	}
}

func TestAPIRequiresToken(t *testing.T) {
	store := openStore(t)
	srv := httptest.NewServer(NewHandler(store, "right", slog.New(slog.DiscardHandler)))
	defer srv.Close()
	for _, auth := range []string{"", "Bearer wrong", "Basic right", "Bearer right2"} {
		t.Run(auth, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(context.Background(), "GET",
				srv.URL+"/v1/clients", nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", resp.StatusCode)
			}
		})
	}
}

func TestEndpointFile(t *testing.T) {
	dir := t.TempDir()
	want := Endpoint{URL: "http://127.0.0.1:1", Token: NewToken()}
	if err := WriteEndpoint(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadEndpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("endpoint (-want +got):\n%s", diff)
	}
	if err := RemoveEndpoint(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadEndpoint(dir); err == nil {
		t.Errorf("endpoint still readable after RemoveEndpoint")
	}
	if err := RemoveEndpoint(dir); err != nil {
		t.Errorf("second RemoveEndpoint: %v", err)
	}
}
