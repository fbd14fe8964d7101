package attack_test

import (
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/mcp-authz/mcp-authz/internal/syncbuf"
	"github.com/mcp-authz/mcp-authz/registry"
)

// faultyDisk is the OS filesystem with file writes failing with errno while
// it is set (ENOSPC: full, EROFS: read-only).
type faultyDisk struct {
	registry.OSFS
	errno *atomic.Value // syscall.Errno, 0 for none
}

func (d faultyDisk) OpenFile(name string, flag int, perm fs.FileMode) (registry.File, error) {
	if e, _ := d.errno.Load().(syscall.Errno); e != 0 && flag&(syscall.O_CREAT) != 0 {
		return nil, e
	}
	f, err := d.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return faultyFile{f, d.errno}, nil
}

type faultyFile struct {
	registry.File
	errno *atomic.Value
}

func (f faultyFile) Write(p []byte) (int, error) {
	if e, _ := f.errno.Load().(syscall.Errno); e != 0 {
		return 0, e
	}
	return f.File.Write(p)
}

// TestUnwritableDisk runs the whole stack on a disk that turns full, then
// read-only: writes answer 503 temporarily_unavailable in the OAuth shape and
// change nothing, decisions for existing tokens go on, the registry says so
// once, and writes resume by themselves when the disk recovers.
func TestUnwritableDisk(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EROFS} {
		t.Run(errno.Error(), func(t *testing.T) {
			var fault atomic.Value
			fault.Store(syscall.Errno(0))
			var logs syncbuf.Buffer
			e := newEnvOptions(t, registry.Options{
				FS:     faultyDisk{errno: &fault},
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			c := e.publicClient(loopbackRedirect)
			tokens := e.grant(c)
			access, refresh := str(tokens["access_token"]), str(tokens["refresh_token"])

			fault.Store(errno)
			for range 3 {
				o, _ := e.register(map[string]any{
					"redirect_uris":              []string{loopbackRedirect},
					"token_endpoint_auth_method": "none",
				})
				if o != (outcome{http.StatusServiceUnavailable, "temporarily_unavailable"}) {
					t.Errorf("register: %+v, want 503 temporarily_unavailable", o)
				}
			}
			if o, _ := e.refresh(c, refresh); o != (outcome{http.StatusServiceUnavailable,
				"temporarily_unavailable"}) {
				t.Errorf("refresh (token issue): %+v, want 503 temporarily_unavailable", o)
			}
			if o, _ := e.form("/revoke", url.Values{"token": {refresh}, "client_id": {c.id}}); o !=
				(outcome{http.StatusServiceUnavailable, "temporarily_unavailable"}) {
				t.Errorf("revoke: %+v, want 503 temporarily_unavailable", o)
			}
			if o := e.checkOutcome(post(access, rpc("tools/list", "{}"))); o.Status != http.StatusOK {
				t.Errorf("decision for an existing token on a failing disk: %+v, want allow", o)
			}
			if n := strings.Count(logs.String(), "registry writes failing"); n != 1 {
				t.Errorf("registry logged the failure %d times, want once:\n%s", n, logs.String())
			}

			// Nothing was half-written: the refresh token was neither rotated
			// nor revoked, and works once the disk recovers.
			fault.Store(syscall.Errno(0))
			o, got := e.refresh(c, refresh)
			if o != oauthOK {
				t.Fatalf("refresh after recovery: %+v %v", o, got)
			}
			if o := e.checkOutcome(post(str(got["access_token"]),
				rpc("tools/list", "{}"))); o.Status != http.StatusOK {
				t.Errorf("new token after recovery: %+v", o)
			}
			if o, _ := e.register(map[string]any{
				"redirect_uris":              []string{loopbackRedirect},
				"token_endpoint_auth_method": "none",
			}); o.Status != http.StatusCreated {
				t.Errorf("register after recovery: %+v", o)
			}
		})
	}
}
