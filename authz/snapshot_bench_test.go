package authz

import (
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/registry"
)

// BenchmarkCheckDuringSnapshot measures decision latency on a registry of
// 1 000 000 clients, idle and while snapshots of it are written back to
// back: a snapshot must not stall decisions. The registry is restarted once
// filled, so that it reads as after any restart: the records in the base
// loaded from the snapshot, later writes in the memdb delta over it. It
// reports the median, p99, p99.9 and worst single decision. Setting up the
// registry takes a while.
func BenchmarkCheckDuringSnapshot(b *testing.B) {
	const clients = 1_000_000
	e := newTestEnv(b)
	fillClients(b, e.store, clients, e.clock.now())
	e.putClient(b, "client-1", false)
	tok, _ := e.mint(b, nil)
	e.restart(b)
	// Let the collector finish with the old registry and the freshly loaded
	// one, as it has in a server up for more than a few seconds.
	runtime.GC()
	req := mcpRequest(bearer(tok))

	measure := func(b *testing.B) {
		lat := make([]time.Duration, 0, 1<<20)
		for b.Loop() {
			start := time.Now()
			d := e.decider.Check(b.Context(), req)
			lat = append(lat, time.Since(start))
			if !d.Allow {
				b.Fatalf("denied: %s", d.Reason)
			}
		}
		slices.Sort(lat)
		q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Nanoseconds()) }
		b.ReportMetric(q(0.5), "p50-ns")
		b.ReportMetric(q(0.99), "p99-ns")
		b.ReportMetric(q(0.999), "p99.9-ns")
		b.ReportMetric(q(1), "max-ns")
	}

	b.Run("idle", measure)
	b.Run("snapshotting", func(b *testing.B) {
		var stop atomic.Bool
		done := make(chan int)
		go func() {
			n := 0
			for !stop.Load() {
				// One write first: a snapshot of an unchanged registry is
				// skipped, and each round must write all 1M clients anew.
				e.putClient(b, fmt.Sprintf("touch-%d", n), false)
				if err := e.store.Snapshot(b.Context()); err != nil {
					b.Error(err)
					break
				}
				n++
			}
			done <- n
		}()
		// Let the first snapshot get under way before measuring.
		time.Sleep(50 * time.Millisecond)
		measure(b)
		stop.Store(true)
		b.ReportMetric(float64(<-done), "snapshots")
	})
}

// fillClients registers n clients in batches of 10 000 per write.
func fillClients(b *testing.B, store *registry.Store, n int, now time.Time) {
	b.Helper()
	const batch = 10_000
	for i := 0; i < n; i += batch {
		err := store.Update(b.Context(), func(tx *registry.Txn) error {
			for j := i; j < i+batch && j < n; j++ {
				err := tx.PutClient(&registry.Client{
					ID:                      fmt.Sprintf("bulk-%07d", j),
					RedirectURIs:            []string{"http://127.0.0.1/callback"},
					TokenEndpointAuthMethod: "none",
					CreatedAt:               now,
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
