package oauth

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/registry"
)

// fullDisk is an OS filesystem whose file writes fail with ENOSPC while full
// is set.
type fullDisk struct {
	registry.OSFS
	full *atomic.Bool
}

func (d fullDisk) OpenFile(name string, flag int, perm fs.FileMode) (registry.File, error) {
	f, err := d.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return fullFile{f, d.full}, nil
}

type fullFile struct {
	registry.File
	full *atomic.Bool
}

func (f fullFile) Write(p []byte) (int, error) {
	if f.full.Load() {
		return 0, syscall.ENOSPC
	}
	return f.File.Write(p)
}

func TestFullDiskAnswersTemporarilyUnavailable(t *testing.T) {
	t.Parallel()
	var full atomic.Bool
	store, err := registry.Open(t.Context(), t.TempDir(),
		registry.Options{Logger: discard(), FS: fullDisk{full: &full}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	e := newEnv(t)
	cfg := e.srv.cfg
	keys, err := authz.NewKeys(t.Context(), store, discard())
	if err != nil {
		t.Fatal(err)
	}
	tokens := authz.NewTokens(cfg.Config, keys)
	srv, err := NewServer(cfg, store, keys, tokens, discard())
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.store = srv, store
	client := e.publicClient(webRedirect)
	_, challenge := pkce()
	full.Store(true)

	resp := e.do(http.MethodPost, "/register", strings.NewReader(
		`{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none"}`),
		map[string]string{"Content-Type": "application/json"})
	if got := decodeJSON(t, resp); resp.StatusCode != http.StatusServiceUnavailable ||
		got["error"] != "temporarily_unavailable" {
		t.Errorf("register on a full disk: %d %v", resp.StatusCode, got)
	}

	// A code cannot be stored: the browser is sent back with the error.
	req, fatal, rerr := srv.parseAuthorize(t.Context(), authParams(client, webRedirect,
		challenge), DevUseAuthorize)
	if fatal != nil || rerr != nil {
		t.Fatal(fatal, rerr)
	}
	r := httptest.NewRequest(http.MethodPost, "/authorize", nil)
	w := httptest.NewRecorder()
	srv.issueCode(w, r, req, testUser, true)
	loc, _ := url.Parse(w.Header().Get("Location"))
	if loc.Query().Get("error") != "temporarily_unavailable" {
		t.Errorf("code on a full disk redirected to %s", loc)
	}

	// Reads go on: the client is still known at the token endpoint.
	resp = e.do(http.MethodPost, "/token", strings.NewReader(url.Values{
		"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {"x"},
	}.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if got := decodeJSON(t, resp); got["error"] != "invalid_grant" {
		t.Errorf("token on a full disk: %d %v", resp.StatusCode, got)
	}
}
