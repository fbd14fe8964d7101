package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
)

func TestExposition(t *testing.T) {
	m := New()
	m.ObserveDecision(&authz.Decision{Allow: true, Reason: authz.ReasonOK}, 40*time.Microsecond)
	m.ObserveDecision(&authz.Decision{Reason: authz.ReasonExpired}, 20*time.Microsecond)
	m.ObserveDecision(&authz.Decision{Reason: authz.ReasonExpired}, 20*time.Microsecond)
	m.Registered()
	m.TokenIssued("refresh_token")
	m.RateLimited("register")
	m.DevModeUsed("authorize")
	m.ObserveFsync(2 * time.Millisecond)
	m.ObserveSnapshot(time.Second, errors.New("disk full"))

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)

	for _, want := range []string{
		`mcp_authz_decisions_total{reason="ok",result="allow"} 1`,
		`mcp_authz_decisions_total{reason="expired",result="deny"} 2`,
		`mcp_authz_decision_duration_seconds_count 3`,
		`mcp_authz_client_registrations_total 1`,
		`mcp_authz_tokens_issued_total{grant_type="refresh_token"} 1`,
		`mcp_authz_wal_fsync_duration_seconds_count 1`,
		`mcp_authz_snapshot_duration_seconds_count{result="error"} 1`,
		`mcp_authz_rate_limited_total{limit="register"} 1`,
		`mcp_authz_dev_mode_uses_total{where="authorize"} 1`,
		`go_goroutines`,
	} {
		t.Run(want, func(t *testing.T) {
			if !strings.Contains(text, want) {
				t.Errorf("exposition lacks %q", want)
			}
		})
	}
}
