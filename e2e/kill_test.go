package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestRegistrationsSurviveSIGKILL registers clients concurrently against the
// real binary, kills it with SIGKILL while registrations are still being
// sent, restarts it and finds every registration that was acknowledged.
func TestRegistrationsSurviveSIGKILL(t *testing.T) {
	p := newAuthzProc(t, "http://127.0.0.1:1/mcp")
	p.start()

	const workers, perWorker = 8, 40
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	killAt := make(chan struct{})
	var once sync.Once
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				id, err := register(p.issuer(), fmt.Sprintf("kill-test %d/%d", w, i))
				if err != nil {
					return // the process is gone; unacknowledged writes may be lost
				}
				mu.Lock()
				acked = append(acked, id)
				if len(acked) == workers*perWorker/2 {
					once.Do(func() { close(killAt) })
				}
				mu.Unlock()
			}
		})
	}
	select {
	case <-killAt:
	case <-time.After(60 * time.Second):
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		t.Fatalf("only %d registrations acknowledged after 60s", n)
	}
	p.kill()
	wg.Wait()

	p.start()
	ids, err := p.clientIDs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for _, id := range acked {
		if !ids[id] {
			lost++
		}
	}
	t.Logf("acknowledged %d registrations before SIGKILL; %d present after restart",
		len(acked), len(ids))
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged registrations lost", lost, len(acked))
	}
	if len(acked) < workers*perWorker/2 {
		t.Fatalf("only %d registrations acknowledged", len(acked))
	}
}

// register makes one public-client registration and returns its client id.
func register(issuer, name string) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"client_name":                name,
		"redirect_uris":              []string{"http://127.0.0.1/callback"},
		"token_endpoint_auth_method": "none",
	})
	resp, err := http.Post(issuer+"/register", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("register: status %d", resp.StatusCode)
	}
	var out struct {
		ClientID string `json:"client_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	return out.ClientID, nil
}
