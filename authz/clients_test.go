package authz

import (
	"sync/atomic"
	"testing"
)

// fixedClients is a ClientLookup over a table; ids it does not hold are
// unknown. It counts its calls.
type fixedClients struct {
	known map[string]bool // id -> revoked
	calls atomic.Int64
}

func (f *fixedClients) ClientKnown(id string) (known, revoked bool) {
	f.calls.Add(1)
	revoked, known = f.known[id]
	return known, revoked
}

func TestDeciderClientLookup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		client string
		inReg  bool // also registered in the registry
		want   Reason
	}{
		{"configured client", "static-1", false, ReasonOK},
		{"document client", "https://app.example.com/client.json", false, ReasonOK},
		{"revoked by the lookup", "revoked-1", false, ReasonRevokedClient},
		{"unknown to the lookup", "nobody", false, ReasonUnknownClient},
		{"registered but unknown to the lookup", "dynamic-1", true, ReasonUnknownClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			if tt.inReg {
				e.putClient(t, tt.client, false)
			}
			l := &fixedClients{known: map[string]bool{
				"static-1": false, "https://app.example.com/client.json": false,
				"revoked-1": true,
			}}
			e.decider.SetClientLookup(l)
			tok, _ := e.mint(t, func(c *AccessClaims) { c.ClientID = tt.client })
			d := e.decider.Check(t.Context(), mcpRequest(bearer(tok)))
			if d.Reason != tt.want {
				t.Errorf("reason %s, want %s", d.Reason, tt.want)
			}
			if l.calls.Load() != 1 {
				t.Errorf("lookup called %d times, want 1", l.calls.Load())
			}
		})
	}
}

func TestDeciderDefaultLookupIsRegistry(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.putClient(t, "client-1", false)
	e.putClient(t, "client-2", true)
	e.decider.SetClientLookup(&fixedClients{})
	e.decider.SetClientLookup(nil) // back to the registry
	for id, want := range map[string]Reason{
		"client-1": ReasonOK, "client-2": ReasonRevokedClient, "client-3": ReasonUnknownClient,
	} {
		tok, _ := e.mint(t, func(c *AccessClaims) { c.ClientID = id })
		if d := e.decider.Check(t.Context(), mcpRequest(bearer(tok))); d.Reason != want {
			t.Errorf("%s: reason %s, want %s", id, d.Reason, want)
		}
	}
}
