package ratelimit

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

func TestParseLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Limit
		wantStr string
		wantErr bool
	}{
		{in: "10/m:20", want: Limit{PerMinute: 10, Burst: 20}, wantStr: "10/m:20"},
		{in: "10/min", want: Limit{PerMinute: 10, Burst: 10}, wantStr: "10/m:10"},
		{in: "2/s", want: Limit{PerMinute: 120, Burst: 2}, wantStr: "120/m:2"},
		{in: "600/h:5", want: Limit{PerMinute: 10, Burst: 5}, wantStr: "10/m:5"},
		{in: " 0.5/m : 1 ", want: Limit{PerMinute: 0.5, Burst: 1}, wantStr: "0.5/m:1"},
		{in: "off", want: Limit{Off: true}, wantStr: "off"},
		{in: "OFF", want: Limit{Off: true}, wantStr: "off"},
		{in: "", wantErr: true},
		{in: "10", wantErr: true},
		{in: "10/d", wantErr: true},
		{in: "0/m", wantErr: true},
		{in: "-1/m", wantErr: true},
		{in: "NaN/m", wantErr: true},
		{in: "Inf/m", wantErr: true},
		{in: "10/m:0", wantErr: true},
		{in: "10/m:x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLimit(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseLimit(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseLimit(%q) (-want +got):\n%s", tt.in, diff)
			}
			if got.String() != tt.wantStr {
				t.Errorf("String() = %q, want %q", got.String(), tt.wantStr)
			}
			var round Limit
			if err := round.UnmarshalText([]byte(got.String())); err != nil || round != got {
				t.Errorf("round trip of %q: %+v, %v", got, round, err)
			}
		})
	}
}

func TestLimiterBurstAndRefill(t *testing.T) {
	t.Parallel()
	l := NewLimiter(Limit{PerMinute: 6, Burst: 3}, 0) // one token every 10 s
	for i := range 3 {
		if ok, _ := l.Allow("a", t0); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.Allow("a", t0)
	if ok || wait != 10*time.Second {
		t.Fatalf("after the burst: ok %v wait %v, want refused for 10s", ok, wait)
	}
	if ok, _ := l.Allow("b", t0); !ok {
		t.Errorf("another key shares the bucket")
	}
	ok, wait = l.Allow("a", t0.Add(4*time.Second))
	if ok || wait != 6*time.Second {
		t.Errorf("4s later: ok %v wait %v, want refused for 6s", ok, wait)
	}
	if ok, _ := l.Allow("a", t0.Add(10*time.Second)); !ok {
		t.Errorf("10s later: refused")
	}
	if ok, _ := l.Allow("a", t0.Add(10*time.Second)); ok {
		t.Errorf("second request 10s later allowed")
	}
	// A clock that goes back neither refills nor breaks the bucket.
	if ok, _ := l.Allow("a", t0); ok {
		t.Errorf("allowed after the clock went back")
	}
	// Refill stops at the burst.
	for i := range 4 {
		ok, _ := l.Allow("a", t0.Add(time.Hour))
		if want := i < 3; ok != want {
			t.Errorf("an hour later, request %d: ok %v, want %v", i+1, ok, want)
		}
	}
}

func TestLimiterUnlimited(t *testing.T) {
	t.Parallel()
	for _, lim := range []Limit{{}, {Off: true, PerMinute: 1, Burst: 1}, {PerMinute: 1}} {
		t.Run(fmt.Sprintf("%+v", lim), func(t *testing.T) {
			l := NewLimiter(lim, 1)
			for range 100 {
				if ok, _ := l.Allow("a", t0); !ok {
					t.Fatal("refused")
				}
			}
			if l.Len() != 0 {
				t.Errorf("unlimited limiter keeps %d keys", l.Len())
			}
		})
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	t.Parallel()
	const max = 100
	l := NewLimiter(Limit{PerMinute: 1, Burst: 2}, max)
	// Busy keys: each has spent a token, so dropping them would lose state.
	for i := range max {
		l.Allow(fmt.Sprint("busy", i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	l.Allow("new", t0.Add(time.Second))
	if n := l.Len(); n > max || n < max/2 {
		t.Fatalf("after overflow %d keys, want between %d and %d", n, max/2, max)
	}
	// The most recent busy key survived with its spent token.
	l.Allow("busy99", t0.Add(time.Second))
	if ok, _ := l.Allow("busy99", t0.Add(time.Second)); ok {
		t.Errorf("recent key lost its state")
	}
	// Refilled buckets go first, without touching the others.
	l2 := NewLimiter(Limit{PerMinute: 60, Burst: 1}, 3)
	l2.Allow("idle1", t0)
	l2.Allow("idle2", t0)
	l2.Allow("hot", t0.Add(time.Minute))
	l2.Allow("new", t0.Add(time.Minute))
	if ok, _ := l2.Allow("hot", t0.Add(time.Minute)); ok {
		t.Errorf("hot key lost its state to a sweep of refilled buckets")
	}
	if n := l2.Len(); n != 2 {
		t.Errorf("after the sweep %d keys, want 2 (hot and new)", n)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]int{
		0: 1, time.Millisecond: 1, time.Second: 1, 1500 * time.Millisecond: 2, time.Minute: 60,
	} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func BenchmarkLimiterAllow(b *testing.B) {
	l := NewLimiter(Limit{PerMinute: 1e9, Burst: 1e9}, 0)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprint("10.0.", i/256, ".", i%256)
	}
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l.Allow(keys[i%len(keys)], now)
	}
}
