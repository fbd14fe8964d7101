package oauth

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/authz/admin"
	"github.com/mcp-authz/mcp-authz/registry"
)

// revokeByOperator revokes a client as `mcp-authz clients revoke` does.
func revokeByOperator(t *testing.T, e *testEnv, id string) {
	t.Helper()
	if _, err := admin.RevokeClient(t.Context(), e.store, id); err != nil {
		t.Fatalf("revoking %s: %v", id, err)
	}
}

// revokeKeepingToken marks a client revoked the way earlier versions of the
// operator's revocation did: its registration access token hash stays.
func revokeKeepingToken(t *testing.T, e *testEnv, id string) {
	t.Helper()
	err := e.store.Update(t.Context(), func(tx *registry.Txn) error {
		c := tx.Client(id).Copy()
		c.RevokedAt = time.Now().UTC()
		return tx.PutClient(c)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestManagementRaceWithRevocation checks that an update or delete
// authorized before the operator revoked the client, and written after, is
// refused and leaves the revocation in place.
func TestManagementRaceWithRevocation(t *testing.T) {
	t.Parallel()
	revokes := map[string]func(*testing.T, *testEnv, string){
		"operator": revokeByOperator, "record with token": revokeKeepingToken,
	}
	for revName, revoke := range revokes {
		for _, method := range []string{http.MethodPut, http.MethodDelete} {
			t.Run(revName+"/"+method, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				reg := e.register(publicMeta(webRedirect))
				id := reg["client_id"].(string)
				stale := e.store.Client(id) // as handleManage loaded it
				revoke(t, e, id)
				revokedAt := e.store.Client(id).RevokedAt

				w := httptest.NewRecorder()
				r := httptest.NewRequest(method, "/register/"+id,
					strings.NewReader(mustJSON(updateBody(reg, nil))))
				r.Header.Set("Content-Type", "application/json")
				if method == http.MethodPut {
					e.srv.updateRegistration(w, r, stale)
				} else {
					e.srv.deleteRegistration(w, r, stale)
				}
				if w.Code != http.StatusUnauthorized ||
					!strings.Contains(w.Body.String(), errInvalidToken) {
					t.Errorf("%s after revocation: %d %s, want 401 invalid_token", method,
						w.Code, w.Body)
				}
				c := e.store.Client(id)
				if c == nil || !c.RevokedAt.Equal(revokedAt) {
					t.Errorf("client after the race: %+v, want revoked at %v", c, revokedAt)
				}
			})
		}
	}
}

// blockingBody is a request body that hands out its first byte, then waits
// for release before the rest.
type blockingBody struct {
	data    string
	read    int
	started chan struct{}
	release chan struct{}
}

func (b *blockingBody) Read(p []byte) (int, error) {
	if b.read == 1 {
		close(b.started)
		<-b.release
	}
	if b.read == len(b.data) {
		return 0, io.EOF
	}
	n := 1
	if b.read > 0 {
		n = copy(p, b.data[b.read:])
	} else {
		p[0] = b.data[0]
	}
	b.read += n
	return n, nil
}

// TestSlowUpdateCannotUndoRevocation replays the reported attack through the
// handler: an update whose body arrives slowly, the operator's revocation
// while it is read, then the rest of the body. The client stays revoked and
// its access tokens stay refused.
func TestSlowUpdateCannotUndoRevocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.decider()
	reg := e.register(publicMeta(webRedirect))
	id := reg["client_id"].(string)
	access := e.codeTokens(id, webRedirect)["access_token"].(string)

	body := &blockingBody{data: mustJSON(updateBody(reg, map[string]any{"client_name": "X"})),
		started: make(chan struct{}), release: make(chan struct{})}
	r := httptest.NewRequest(http.MethodPut, "/register/"+id, body)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+reg["registration_access_token"].(string))
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.srv.ServeHTTP(w, r)
	}()
	select {
	case <-body.started: // the handler checked the token and reads the body
	case <-done:
		t.Fatalf("the update ended before reading its body: %d %s", w.Code, w.Body)
	}
	revokeByOperator(t, e, id)
	close(body.release)
	<-done

	if w.Code != http.StatusUnauthorized {
		t.Errorf("slow update across a revocation: %d %s, want 401", w.Code, w.Body)
	}
	if c := e.store.Client(id); !c.Revoked() || c.Name != "Test App" {
		t.Errorf("client after the slow update: %+v, want revoked and unchanged", c)
	}
	if got := e.decideWith(d, access); got != authz.ReasonRevokedClient {
		t.Errorf("access token after the slow update: %s, want %s", got,
			authz.ReasonRevokedClient)
	}
}

// TestOperatorRevocation checks what the operator's revocation takes away:
// management with the registration access token, the remembered consent,
// refresh tokens, and new authorizations.
func TestOperatorRevocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := e.register(publicMeta(webRedirect))
	id := reg["client_id"].(string)
	tok := e.codeTokens(id, webRedirect)
	if e.store.Consent(testUser, id) == nil {
		t.Fatalf("no consent remembered after the flow")
	}
	revokeByOperator(t, e, id)

	c := e.store.Client(id)
	if !c.Revoked() || c.RegistrationTokenHash != "" {
		t.Errorf("revoked client %+v: want RevokedAt set and no registration token", c)
	}
	if e.store.Consent(testUser, id) != nil {
		t.Errorf("the consent for the revoked client is still remembered")
	}
	rt := e.store.RefreshToken(hashSecret(tok["refresh_token"].(string)))
	if rt == nil || rt.RevokedAt.IsZero() {
		t.Errorf("refresh token after revocation: %+v, want kept and revoked", rt)
	}
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		resp := e.manage(method, reg, updateBody(reg, nil))
		got := decodeJSON(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || got["error"] != errInvalidToken {
			t.Errorf("%s of a revoked registration: %d %v, want 401 invalid_token", method,
				resp.StatusCode, got)
		}
	}
	if !e.store.Client(id).Revoked() {
		t.Errorf("the revoked client was changed by management requests")
	}
	_, challenge := pkce()
	rec := e.do(http.MethodGet, "/authorize?"+authParams(id, webRedirect, challenge).Encode(),
		nil, nil)
	if rec.StatusCode != http.StatusBadRequest || rec.Header.Get("Location") != "" {
		t.Errorf("authorize for a revoked client: %d Location %q", rec.StatusCode,
			rec.Header.Get("Location"))
	}
}
