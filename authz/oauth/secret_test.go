package oauth

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/url"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/internal/syncbuf"
)

func TestFingerprint(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"", "a", "eyJhbGciOiJFUzI1NiJ9.e30.sig"} {
		t.Run(raw, func(t *testing.T) {
			t.Parallel()
			sum := sha256.Sum256([]byte(raw))
			if got, want := fingerprint(raw), hex.EncodeToString(sum[:])[:12]; got != want {
				t.Errorf("fingerprint(%q) = %s, want %s", raw, got, want)
			}
		})
	}
}

// TestFingerprintMatchesDecision checks that an operator finds one access
// token under the same token_fp in the decision's log and in the
// authorization server's.
func TestFingerprintMatchesDecision(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	logs := e.logServer()
	client := e.publicClient(webRedirect)
	at := e.codeTokens(client, webRedirect)["access_token"].(string)

	decBuf := &syncbuf.Buffer{}
	dl := slog.New(slog.NewTextHandler(decBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := authz.NewDecider(e.srv.cfg.Config, e.tokens, e.store, dl)
	d.SetClientLookup(e.srv)
	e.decideWith(d, at)
	e.postForm("/revoke", url.Values{"client_id": {client}, "token": {at}}).Body.Close()

	fp := regexp.MustCompile(`token_fp=([0-9a-f]+)`)
	var got []string
	for _, lines := range [][]string{decBuf.Lines("token_fp="), logs.Lines("token revoked")} {
		if len(lines) != 1 {
			t.Fatalf("want one line with a token fingerprint, got %q", lines)
		}
		m := fp.FindStringSubmatch(lines[0])
		if m == nil {
			t.Fatalf("no token_fp in %q", lines[0])
		}
		got = append(got, m[1])
	}
	want := []string{fingerprint(at), fingerprint(at)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("token_fp in the decision's and the server's log (-want +got):\n%s", diff)
	}
}
