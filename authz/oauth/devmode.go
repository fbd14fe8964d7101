package oauth

import (
	"context"
	"log/slog"
	"sync"
)

// devModeHandler raises every log line about development mode's
// unregistered clients (a line whose client_id such a client has) to WARN
// and adds dev_mode=true, so that no line it affects goes unnoticed. Lines
// about other clients pass through unchanged. It is installed only when
// development mode is on.
type devModeHandler struct {
	inner slog.Handler
	isDev func(id string) bool
}

// Enabled lets every line through to Handle, which decides once it has
// seen the client id.
func (h *devModeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, max(l, slog.LevelWarn))
}

// Handle promotes lines about development mode's clients and drops others
// that the inner handler does not want.
func (h *devModeHandler) Handle(ctx context.Context, r slog.Record) error {
	dev := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "client_id" && h.isDev(a.Value.String()) {
			dev = true
			return false
		}
		return true
	})
	if !dev {
		if !h.inner.Enabled(ctx, r.Level) {
			return nil
		}
		return h.inner.Handle(ctx, r)
	}
	r = r.Clone()
	r.Level = max(r.Level, slog.LevelWarn)
	marked := false
	r.Attrs(func(a slog.Attr) bool {
		marked = a.Key == "dev_mode"
		return !marked
	})
	if !marked {
		r.AddAttrs(slog.Bool("dev_mode", true))
	}
	return h.inner.Handle(ctx, r)
}

// WithAttrs returns the handler with attrs added.
func (h *devModeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &devModeHandler{inner: h.inner.WithAttrs(attrs), isDev: h.isDev}
}

// WithGroup returns the handler with a group opened.
func (h *devModeHandler) WithGroup(name string) slog.Handler {
	return &devModeHandler{inner: h.inner.WithGroup(name), isDev: h.isDev}
}

// seenSet remembers up to max strings, to log something once per client.
// When full it starts again, so an id may then be logged a second time.
type seenSet struct {
	mu  sync.Mutex
	max int
	m   map[string]struct{}
}

func newSeenSet(max int) *seenSet { return &seenSet{max: max, m: map[string]struct{}{}} }

// add records s and reports whether it was new.
func (t *seenSet) add(s string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[s]; ok {
		return false
	}
	if len(t.m) >= t.max {
		clear(t.m)
	}
	t.m[s] = struct{}{}
	return true
}
