package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz/admin"
)

// crashCycles is how many times TestCrashLoop kills mcp-authz.
const crashCycles = 20

// ledger is what the crash loop was told succeeded: every acknowledged write
// must be found again after any number of SIGKILLs.
type ledger struct {
	mu sync.Mutex
	// clients maps an acknowledged registration to its state.
	clients map[string]*clientState
	writes  int
}

type clientState struct {
	revoked bool
	// unsure is set while a client revocation is in flight: if its answer
	// is lost, either outcome is correct.
	unsure bool
	// refresh is the newest acknowledged, unrevoked refresh token.
	refresh string
	// revokedRefresh holds refresh tokens whose revocation was acknowledged.
	revokedRefresh []string
}

func (l *ledger) ack(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f()
	l.writes++
}

// TestCrashLoop drives concurrent registrations, token exchanges, refreshes
// and revocations against the real binary, kills it with SIGKILL at random
// moments, restarts it and checks that every acknowledged write is present
// and usable: registered clients complete a code exchange, revoked clients
// and revoked refresh tokens are refused, live refresh tokens still work.
//
// Snapshots are taken every 40 log records, so kills also land while one is
// written or the registry's base is being rebuilt from it.
func TestCrashLoop(t *testing.T) {
	p := newAuthzProc(t, "http://127.0.0.1:1/mcp", "--snapshot-records", "40")
	oc := newOAuthClient(p.issuer(), "http://127.0.0.1:1/mcp")
	l := &ledger{clients: map[string]*clientState{}}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	t.Logf("seed-free random kill points; %d cycles", crashCycles)

	var killedAfter []time.Duration
	for cycle := range crashCycles {
		p.start()
		verifyLedger(t, p, oc, l, cycle)
		if t.Failed() {
			return
		}

		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() { crashWorker(ctx, p, oc, l, fmt.Sprintf("c%d-w%d", cycle, w)) })
		}
		after := time.Duration(50+rng.IntN(400)) * time.Millisecond
		time.Sleep(after)
		p.kill()
		cancel()
		wg.Wait()
		killedAfter = append(killedAfter, after)
	}
	p.start()
	verifyLedger(t, p, oc, l, crashCycles)

	l.mu.Lock()
	defer l.mu.Unlock()
	revoked := 0
	for _, c := range l.clients {
		if c.revoked {
			revoked++
		}
	}
	logs := p.logText()
	snapshots := strings.Count(logs, "snapshot written")
	rebases := strings.Count(logs, "base rebuilt from the snapshot")
	if snapshots == 0 || rebases == 0 {
		t.Errorf("%d snapshots written and %d bases rebuilt: the loop did not test them",
			snapshots, rebases)
	}
	t.Logf("%d SIGKILLs (after %v), %d acknowledged writes, %d clients (%d revoked), "+
		"%d snapshots and %d base rebuilds completed: 0 lost, 0 failed starts",
		crashCycles, killedAfter, l.writes, len(l.clients), revoked, snapshots, rebases)
}

// crashWorker performs random operations until ctx ends or the process dies,
// recording in l only what was acknowledged.
func crashWorker(ctx context.Context, p *authzProc, oc *oauthClient, l *ledger, name string) {
	ua := newUserAgent(callbackURI)
	adminAPI := adminClient(p)
	for i := 0; ctx.Err() == nil; i++ {
		id, err := oc.register(ctx, fmt.Sprintf("%s-%d", name, i))
		if err != nil {
			return
		}
		l.ack(func() { l.clients[id] = &clientState{} })

		tok, err := oc.authorize(ctx, ua, id)
		if err != nil || tok.Status != http.StatusOK {
			return
		}
		l.ack(func() { l.clients[id].refresh = tok.RefreshToken })

		// An operation whose answer is lost may or may not have happened:
		// forget the token (or mark the client) before sending it.
		switch i % 3 {
		case 0: // rotate
			l.ack(func() { l.clients[id].refresh = "" })
			next, err := oc.refresh(ctx, id, tok.RefreshToken)
			if err != nil || next.Status != http.StatusOK {
				return
			}
			l.ack(func() { l.clients[id].refresh = next.RefreshToken })
		case 1: // revoke the refresh token
			l.ack(func() { l.clients[id].refresh = "" })
			if err := oc.revoke(ctx, id, tok.RefreshToken); err != nil {
				return
			}
			l.ack(func() {
				c := l.clients[id]
				c.revokedRefresh = append(c.revokedRefresh, tok.RefreshToken)
			})
		case 2: // revoke the client
			if adminAPI == nil {
				continue
			}
			l.ack(func() { l.clients[id].unsure = true })
			if _, err := adminAPI.RevokeClient(ctx, id); err != nil {
				return
			}
			l.ack(func() { l.clients[id].revoked, l.clients[id].unsure = true, false })
		}
	}
}

func adminClient(p *authzProc) *admin.Client {
	ep, err := admin.ReadEndpoint(p.dataDir)
	if err != nil {
		return nil
	}
	return &admin.Client{Endpoint: ep, HTTP: &http.Client{Timeout: 5 * time.Second}}
}

// verifyLedger checks every acknowledged write against the restarted
// process.
func verifyLedger(t *testing.T, p *authzProc, oc *oauthClient, l *ledger, cycle int) {
	t.Helper()
	ctx := t.Context()
	ids, err := adminClient(p).ListClients(ctx)
	if err != nil {
		t.Fatalf("cycle %d: listing clients: %v", cycle, err)
	}
	present := map[string]bool{}
	for _, v := range ids {
		present[v.ID] = !v.RevokedAt.IsZero()
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	ua := newUserAgent(callbackURI)
	for id, c := range l.clients {
		revoked, ok := present[id]
		if !ok {
			t.Errorf("cycle %d: acknowledged client %s lost", cycle, id)
			continue
		}
		if c.unsure {
			// The revocation's answer was lost; settle on what the server says.
			c.revoked, c.unsure = revoked, false
		}
		if c.revoked && !revoked {
			t.Errorf("cycle %d: acknowledged revocation of %s lost", cycle, id)
		}
		for _, rt := range c.revokedRefresh {
			ans, err := oc.refresh(ctx, id, rt)
			if err != nil || ans.Status == http.StatusOK {
				t.Errorf("cycle %d: revoked refresh token of %s works again (%v)", cycle, id, err)
			}
		}
		if c.revoked {
			ans, err := oc.refresh(ctx, id, "x")
			if err != nil || ans.Status != http.StatusUnauthorized || ans.Error != "invalid_client" {
				t.Errorf("cycle %d: revoked client %s: %+v %v, want 401 invalid_client",
					cycle, id, ans, err)
			}
			continue
		}
		if c.refresh != "" {
			ans, err := oc.refresh(ctx, id, c.refresh)
			if err != nil || ans.Status != http.StatusOK {
				t.Errorf("cycle %d: refresh token of %s refused: %+v %v", cycle, id, ans, err)
			} else {
				c.refresh = ans.RefreshToken
			}
		}
	}
	// A sample of live clients must still complete a whole code exchange.
	checked := 0
	for id, c := range l.clients {
		if c.revoked || c.unsure || checked >= 5 {
			continue
		}
		checked++
		ans, err := oc.authorize(ctx, ua, id)
		if err != nil || ans.Status != http.StatusOK {
			t.Errorf("cycle %d: registered client %s cannot complete a code exchange: %+v %v",
				cycle, id, ans, err)
		}
	}
}
