package oauth

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentRedemption presents one code, then one refresh token, from
// several goroutines at once: exactly one wins, the others see a replay.
func TestConcurrentRedemption(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	code, verifier := e.codeFor(client, webRedirect)

	race := func(form url.Values) (wins int) {
		t.Helper()
		const n = 8
		statuses := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				w := httptest.NewRecorder()
				r := httptest.NewRequest(http.MethodPost, "/token",
					strings.NewReader(form.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				e.srv.ServeHTTP(w, r)
				statuses[i] = w.Code
			})
		}
		wg.Wait()
		for _, s := range statuses {
			if s == http.StatusOK {
				wins++
			} else if s != http.StatusBadRequest {
				t.Errorf("status %d", s)
			}
		}
		return wins
	}
	if wins := race(codeForm(client, code, verifier, webRedirect)); wins != 1 {
		t.Fatalf("%d concurrent code redemptions succeeded, want 1", wins)
	}
	// The losers replayed the code: its grant is revoked.
	grant := e.store.AuthCode(hashSecret(code)).GrantID
	if !e.store.Revoked("grant:" + grant) {
		t.Errorf("grant not revoked after concurrent replay")
	}

	rt := e.codeTokens(client, webRedirect)["refresh_token"].(string)
	if wins := race(refreshForm(client, rt)); wins != 1 {
		t.Fatalf("%d concurrent refreshes succeeded, want 1", wins)
	}
}

// BenchmarkRefresh measures one refresh token rotation through the HTTP
// handler: client lookup, token minting and one durable registry write.
func BenchmarkRefresh(b *testing.B) {
	e := newEnv(b)
	client := e.publicClient(webRedirect)
	rt := e.codeTokens(client, webRedirect)["refresh_token"].(string)
	for b.Loop() {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/token",
			strings.NewReader(refreshForm(client, rt).Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		e.srv.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("refresh: %d %s", w.Code, w.Body)
		}
		rt = decodeJSON(b, w.Result())["refresh_token"].(string)
	}
}

// BenchmarkMatchRedirectURI measures the loopback redirect URI match.
func BenchmarkMatchRedirectURI(b *testing.B) {
	reg := []string{"https://vscode.dev/redirect", "http://localhost", "http://127.0.0.1"}
	for b.Loop() {
		if !matchRedirectURI(reg, "http://127.0.0.1:33418/") {
			b.Fatal("no match")
		}
	}
}
