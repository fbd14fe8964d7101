// Package metrics exposes mcp-authz's Prometheus metrics: decisions by
// result and reason with their latency, registrations, token issues, the
// registry's fsync latency and snapshot durations. Each component gets a
// plain hook function from here, so no other package imports Prometheus.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcp-authz/mcp-authz/authz"
)

const namespace = "mcp_authz"

// Metrics holds the collectors of one process.
type Metrics struct {
	reg             *prometheus.Registry
	decisions       *prometheus.CounterVec
	decisionLatency prometheus.Histogram
	registrations   prometheus.Counter
	tokens          *prometheus.CounterVec
	rateLimited     *prometheus.CounterVec
	devMode         *prometheus.CounterVec
	fsyncLatency    prometheus.Histogram
	snapshots       *prometheus.HistogramVec
}

// New returns a fresh set of collectors with the Go runtime and process
// collectors registered too.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "decisions_total",
			Help: "Authorization checks answered, by result (allow, deny, error) " +
				"and reason code.",
		}, []string{"result", "reason"}),
		decisionLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "decision_duration_seconds",
			Help:    "Time to answer one ext_authz check, translation included.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10), // 1µs .. 262ms
		}),
		registrations: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "client_registrations_total",
			Help: "Clients registered dynamically.",
		}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tokens_issued_total",
			Help: "Access tokens issued, by grant type.",
		}, []string{"grant_type"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rate_limited_total",
			Help: "Requests refused by a rate limit or login lockout, by limit.",
		}, []string{"limit"}),
		devMode: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "dev_mode_uses_total",
			Help: "Unknown clients let through by development mode, by where.",
		}, []string{"where"}),
		fsyncLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "wal_fsync_duration_seconds",
			Help:    "Latency of write-ahead log fsyncs.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 14), // 50µs .. 410ms
		}),
		snapshots: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "snapshot_duration_seconds",
			Help:    "Time to write a registry snapshot, by result (ok, error).",
			Buckets: prometheus.ExponentialBuckets(1e-3, 4, 9), // 1ms .. 65s
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.decisions, m.decisionLatency, m.registrations, m.tokens,
		m.rateLimited, m.devMode, m.fsyncLatency, m.snapshots,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Results of a check, the result label of decisions_total.
const (
	resultAllow = "allow"
	resultDeny  = "deny"
	resultError = "error"
)

// ObserveDecision counts one answered check and its latency.
func (m *Metrics) ObserveDecision(d *authz.Decision, elapsed time.Duration) {
	m.decisions.WithLabelValues(result(d), string(d.Reason)).Inc()
	m.decisionLatency.Observe(elapsed.Seconds())
}

// result classifies an answered check: resultAllow, resultDeny for a
// verdict against the request (a 4xx answer: no token, a bad one, too little
// scope), or resultError when no verdict could be had (a 5xx answer: a proxy
// subrequest that does not name its original request, a failed checker, an
// expired deadline). The envoy package answers a 5xx only then, on its gRPC
// and HTTP paths alike, so an alert on errors sees a misconfigured proxy or
// an outage, and one on denials sees clients.
func result(d *authz.Decision) string {
	switch {
	case d.Allow:
		return resultAllow
	case d.Status >= 500 && d.Status <= 599:
		return resultError
	}
	return resultDeny
}

// ObserveFsync records one write-ahead log fsync.
func (m *Metrics) ObserveFsync(d time.Duration) { m.fsyncLatency.Observe(d.Seconds()) }

// ObserveSnapshot records one snapshot attempt.
func (m *Metrics) ObserveSnapshot(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.snapshots.WithLabelValues(result).Observe(d.Seconds())
}

// Registered counts one dynamic client registration.
func (m *Metrics) Registered() { m.registrations.Inc() }

// TokenIssued counts one access token issued with grantType.
func (m *Metrics) TokenIssued(grantType string) { m.tokens.WithLabelValues(grantType).Inc() }

// RateLimited counts one request refused by the named limit.
func (m *Metrics) RateLimited(limit string) { m.rateLimited.WithLabelValues(limit).Inc() }

// DevModeUsed counts one unknown client let through by development mode.
func (m *Metrics) DevModeUsed(where string) { m.devMode.WithLabelValues(where).Inc() }
