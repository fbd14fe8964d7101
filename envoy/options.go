package envoy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
)

// Checker decides one authorization request. *authz.Decider implements it;
// tests use fakes. Check must return a non-nil Decision and must not block on
// I/O.
type Checker interface {
	Check(ctx context.Context, req *authz.Request) *authz.Decision
}

// Options tunes an AuthorizationServer or an HTTP check handler. The zero
// value is ready to use.
type Options struct {
	// Observe, when set, is called once per answered request with the
	// Decision sent (including the ones this package builds for an expired
	// deadline, a failed Checker or a proxy subrequest that does not name its
	// original request) and the time spent answering. The Decisions built
	// here all carry a 5xx Status, which no verdict on a token does, so the
	// hook tells errors from denials by the Status (metrics counts them
	// under result="error"). It runs on the request's goroutine, so it must
	// be fast; metrics attach here.
	Observe func(d *authz.Decision, elapsed time.Duration)
}

// merge returns the Options in opts combined, later non-nil fields winning.
func merge(opts []Options) Options {
	var o Options
	for _, x := range opts {
		if x.Observe != nil {
			o.Observe = x.Observe
		}
	}
	return o
}

// idSource makes decision ids for requests that arrive without one (no
// Envoy request id, no x-request-id): a random per-process prefix and a
// counter, so ids are unique without a random read per request.
type idSource struct {
	prefix string
	n      atomic.Uint64
}

func newIDSource() *idSource {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return &idSource{prefix: "mcpz-" + hex.EncodeToString(b[:]) + "-"}
}

func (s *idSource) next() string {
	return s.prefix + strconv.FormatUint(s.n.Add(1), 10)
}
