package authz

import "github.com/mcp-authz/mcp-authz/registry"

// ClientLookup tells the decision whether the client named in a token may
// still use it. The authorization server implements it to add the clients
// that are not in the registry (configured clients, clients identified by a
// metadata document URL, development mode's unregistered clients).
//
// ClientKnown is called on every decision: it must answer from memory,
// without I/O or allocation, and be safe for concurrent use. known is false
// for an id no source knows; revoked is true for a known client an
// operator revoked.
type ClientLookup interface {
	ClientKnown(id string) (known, revoked bool)
}

// RegistryClients is the ClientLookup of the registry's clients alone: the
// Decider's default.
type RegistryClients struct{ Store *registry.Store }

// ClientKnown reports whether the registry holds the client and whether it
// is revoked.
func (r RegistryClients) ClientKnown(id string) (known, revoked bool) {
	c := r.Store.Client(id)
	if c == nil {
		return false, false
	}
	return true, c.Revoked()
}

// SetClientLookup makes d ask l, instead of the registry alone, whether a
// token's client is known and not revoked. Call it before d serves its
// first request; a nil l restores the default.
func (d *Decider) SetClientLookup(l ClientLookup) {
	if l == nil {
		l = RegistryClients{Store: d.store}
	}
	d.lookup = l
}
