package envoy

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
)

// seenRequest is what a fakeChecker records of an authz.Request: its plain
// fields and the answers of Header for a few names.
type seenRequest struct {
	DecisionID        string
	Method            string
	Scheme            string
	Host              string
	Path              string
	Authorization     []string
	Headers           map[string]string
	Body              string
	BodyPartial       bool
	ContextExtensions map[string]string
}

// probedHeaders are the names a fakeChecker looks up with Header.
var probedHeaders = []string{"host", "content-type", "x-custom", "mcp-method"}

// fakeChecker answers every request with a fixed Decision and records the
// requests it saw.
type fakeChecker struct {
	decision *authz.Decision
	panics   bool

	mu   sync.Mutex
	seen []seenRequest
}

func (f *fakeChecker) Check(_ context.Context, req *authz.Request) *authz.Decision {
	s := seenRequest{
		DecisionID:        req.DecisionID,
		Method:            req.Method,
		Scheme:            req.Scheme,
		Host:              req.Host,
		Path:              req.Path,
		Authorization:     req.Authorization,
		Body:              string(req.Body),
		BodyPartial:       req.BodyPartial,
		ContextExtensions: req.ContextExtensions,
	}
	if req.Header != nil {
		for _, name := range probedHeaders {
			if v := req.Header(name); v != "" {
				if s.Headers == nil {
					s.Headers = map[string]string{}
				}
				s.Headers[name] = v
			}
		}
	}
	f.mu.Lock()
	f.seen = append(f.seen, s)
	f.mu.Unlock()

	if f.panics {
		panic("fake checker told to panic")
	}
	if f.decision == nil {
		return nil
	}
	d := *f.decision
	return &d
}

// calls returns the requests seen so far.
func (f *fakeChecker) calls() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.seen...)
}

// discard is a logger that drops everything.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

var (
	allowDecision = &authz.Decision{
		Allow:    true,
		Reason:   authz.ReasonOK,
		ClientID: "client-1",
		Subject:  "alice",
		Scope:    "mcp:tools mcp:resources",
		Resource: "http://localhost:8080/mcp",
	}
	challenge = `Bearer resource_metadata=` +
		`"http://localhost:8080/.well-known/oauth-protected-resource/mcp"`
	denyNoToken = &authz.Decision{
		Reason:          authz.ReasonNoToken,
		Status:          401,
		WWWAuthenticate: challenge,
		Body:            []byte(`{"error":"invalid_token"}`),
	}
	denyScope = &authz.Decision{
		Reason: authz.ReasonInsufficientScope,
		Status: 403,
		WWWAuthenticate: `Bearer error="insufficient_scope", scope="mcp:tools mcp:admin", ` +
			`resource_metadata="http://localhost:8080/.well-known/oauth-protected-resource/mcp"`,
		Body: []byte(`{"error":"insufficient_scope"}`),
	}
)

// reasonRecorder is an Options.Observe hook that records reasons.
type reasonRecorder struct {
	mu  sync.Mutex
	got []authz.Reason
}

func (r *reasonRecorder) observe(d *authz.Decision, elapsed time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, d.Reason)
}

func (r *reasonRecorder) reasons() []authz.Reason {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]authz.Reason(nil), r.got...)
}
