package authz

// NOTE(skeleton): signatures agreed between the authz core and its users.
// The authz core work replaces these stub bodies (and may move them to
// better-named files) without changing the signatures.

import (
	"context"
	"log/slog"

	"github.com/mcp-authz/mcp-authz/registry"
)

// Decider answers Requests from tokens and the registry.
type Decider struct{}

// NewDecider returns a Decider.
func NewDecider(cfg Config, tokens *Tokens, store *registry.Store, logger *slog.Logger) *Decider {
	return &Decider{}
}

// Check decides one request. It never blocks on I/O.
func (d *Decider) Check(ctx context.Context, req *Request) *Decision {
	return &Decision{Allow: false, Reason: ReasonNoToken, Status: 401}
}
