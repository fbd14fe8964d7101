package envoy

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
)

// reasonInternal marks the denial this package builds when the Checker
// panics or returns no Decision. It is not an authz reason because authz did
// not give it.
const reasonInternal authz.Reason = "internal_error"

// unavailable is the Decision for a request the Checker could not answer: a
// 503 so the proxy sees an outage, not a verdict on the token.
func unavailable(reason authz.Reason) *authz.Decision {
	return &authz.Decision{
		Reason: reason,
		Status: http.StatusServiceUnavailable,
		Body:   errorBody("temporarily_unavailable", reason),
	}
}

// errorBody is a small JSON error body naming the reason code.
func errorBody(code string, reason authz.Reason) []byte {
	b, _ := json.Marshal(struct {
		Error  string       `json:"error"`
		Reason authz.Reason `json:"reason"`
	}{code, reason})
	return b
}

// decide asks checker about req. It does not call the Checker when ctx is
// already done (the proxy has stopped waiting), and turns a panic or a nil
// Decision into a 503 denial, so that every path yields a Decision.
func decide(ctx context.Context, checker Checker, req *authz.Request,
	logger *slog.Logger) (d *authz.Decision) {
	if ctx.Err() != nil {
		return unavailable(authz.ReasonDeadline)
	}

	defer func() {
		if r := recover(); r != nil {
			logger.Error("checker panicked", "decision_id", req.DecisionID, "panic", r)
			d = unavailable(reasonInternal)
		}
	}()
	d = checker.Check(ctx, req)
	if d == nil {
		logger.Error("checker returned no decision", "decision_id", req.DecisionID)
		return unavailable(reasonInternal)
	}
	return d
}

// denyStatus is the HTTP status for a denied Decision: its Status when that
// is a 4xx or 5xx, else 403 (Envoy's own default for a denial).
func denyStatus(d *authz.Decision) int {
	if d.Status < 400 || d.Status > 599 {
		return http.StatusForbidden
	}
	return d.Status
}

// denyBody is the body for a denied Decision: its Body, or a JSON object
// naming the reason when it has none.
func denyBody(d *authz.Decision) []byte {
	if len(d.Body) > 0 {
		return d.Body
	}
	code := "access_denied"
	if denyStatus(d) >= 500 {
		code = "temporarily_unavailable"
	}
	return errorBody(code, d.Reason)
}

// validHeaderValue reports whether v can be sent as an HTTP header value:
// no control characters other than horizontal tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// identity is one upstream identity header and its value for an allowed
// request.
type identity struct{ name, value string }

// identities lists the upstream identity headers of an allowed Decision.
// A value that cannot be sent as a header is dropped (and logged), so the
// header is removed rather than passed on from the client.
func identities(d *authz.Decision, decisionID string, logger *slog.Logger) [3]identity {
	ids := [3]identity{
		{authz.HeaderClientID, d.ClientID},
		{authz.HeaderSubject, d.Subject},
		{authz.HeaderScope, d.Scope},
	}
	for i := range ids {
		if !validHeaderValue(ids[i].value) {
			logger.Warn("identity value is not a valid header value; header removed",
				"decision_id", decisionID, "header", ids[i].name)
			ids[i].value = ""
		}
	}
	return ids
}

// observe logs one debug line for a decision and calls the Observe hook. The
// token is never logged.
func observe(ctx context.Context, logger *slog.Logger, o *Options, decisionID string,
	d *authz.Decision, start time.Time) {
	elapsed := time.Since(start)
	if logger.Enabled(ctx, slog.LevelDebug) {
		logger.LogAttrs(ctx, slog.LevelDebug, "decision",
			slog.String("decision_id", decisionID),
			slog.Bool("allow", d.Allow),
			slog.String("reason", string(d.Reason)),
			slog.String("client_id", d.ClientID),
			slog.Int("status", statusFor(d)),
			slog.Duration("elapsed", elapsed))
	}
	if o.Observe != nil {
		o.Observe(d, elapsed)
	}
}

// statusFor is the HTTP status a Decision is answered with.
func statusFor(d *authz.Decision) int {
	if d.Allow {
		return http.StatusOK
	}
	return denyStatus(d)
}
