package ratelimit

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMaxKeys is the number of keys a Limiter or Lockout keeps when
// none is given.
const DefaultMaxKeys = 10000

// Limit is a token-bucket rate. The zero Limit has no rate; NewLimiter
// treats it, and any Limit with Off set, as unlimited.
type Limit struct {
	// PerMinute is the sustained number of requests per minute.
	PerMinute float64
	// Burst is how many requests may come at once after a quiet spell.
	Burst int
	// Off disables the limit.
	Off bool
}

// Unlimited reports whether l lets every request through.
func (l Limit) Unlimited() bool { return l.Off || l.PerMinute <= 0 || l.Burst <= 0 }

// String renders l as ParseLimit reads it: "off", or the rate per minute and
// the burst, as in "10/m:20".
func (l Limit) String() string {
	if l.Unlimited() {
		return "off"
	}
	return strconv.FormatFloat(l.PerMinute, 'g', -1, 64) + "/m:" + strconv.Itoa(l.Burst)
}

// ParseLimit reads a limit written as COUNT/UNIT[:BURST], where UNIT is s, m
// or h ("10/m:20" is 10 per minute with bursts of 20; "600/h" is 10 per
// minute with bursts of 600), or "off". Without a burst the burst is COUNT.
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "off") {
		return Limit{Off: true}, nil
	}
	rate, burstStr, hasBurst := strings.Cut(s, ":")
	countStr, unit, ok := strings.Cut(rate, "/")
	if !ok {
		return Limit{}, fmt.Errorf("limit %q: want COUNT/UNIT[:BURST] or off", s)
	}
	count, err := strconv.ParseFloat(strings.TrimSpace(countStr), 64)
	if err != nil || count <= 0 || math.IsInf(count, 0) || math.IsNaN(count) {
		return Limit{}, fmt.Errorf("limit %q: count must be a positive number", s)
	}
	var per float64
	switch strings.TrimSpace(unit) {
	case "s", "sec":
		per = count * 60
	case "m", "min":
		per = count
	case "h", "hour":
		per = count / 60
	default:
		return Limit{}, fmt.Errorf("limit %q: unit must be s, m or h", s)
	}
	burst := int(math.Ceil(count))
	if hasBurst {
		if burst, err = strconv.Atoi(strings.TrimSpace(burstStr)); err != nil || burst < 1 {
			return Limit{}, fmt.Errorf("limit %q: burst must be a positive integer", s)
		}
	}
	return Limit{PerMinute: per, Burst: burst}, nil
}

// MarshalText renders l with String.
func (l Limit) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads l with ParseLimit, so a Limit can be a flag.TextVar or
// a YAML scalar.
func (l *Limit) UnmarshalText(b []byte) error {
	v, err := ParseLimit(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// bucket is one key's token bucket: tokens as of last.
type bucket struct {
	tokens float64
	last   time.Time
}

// Limiter applies one Limit to many keys. It is safe for concurrent use.
type Limiter struct {
	limit   Limit
	perSec  float64
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*bucket
}

// NewLimiter returns a Limiter for l that keeps at most maxKeys buckets
// (DefaultMaxKeys when maxKeys <= 0).
func NewLimiter(l Limit, maxKeys int) *Limiter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Limiter{
		limit: l, perSec: l.PerMinute / 60, maxKeys: maxKeys,
		buckets: map[string]*bucket{},
	}
}

// Limit returns the limit l applies.
func (l *Limiter) Limit() Limit { return l.limit }

// Allow takes a token from key's bucket at now. When the bucket is empty it
// returns false and how long until a token is available.
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	if l.limit.Unlimited() {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.maxKeys {
			l.sweep(now)
		}
		b = &bucket{tokens: float64(l.limit.Burst), last: now}
		l.buckets[key] = b
	} else {
		b.tokens = l.tokensAt(b, now)
		if now.After(b.last) {
			b.last = now
		}
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := (1 - b.tokens) / l.perSec
	return false, time.Duration(math.Ceil(wait * float64(time.Second)))
}

// tokensAt is b's token count at now; a clock that went back adds nothing.
func (l *Limiter) tokensAt(b *bucket, now time.Time) float64 {
	elapsed := now.Sub(b.last).Seconds()
	if elapsed <= 0 {
		return b.tokens
	}
	return min(float64(l.limit.Burst), b.tokens+elapsed*l.perSec)
}

// Len returns the number of keys l holds.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// sweep drops the buckets that have refilled (they are the same as no
// bucket) and, if that frees nothing, the least recently used half.
func (l *Limiter) sweep(now time.Time) {
	n := len(l.buckets)
	for k, b := range l.buckets {
		if l.tokensAt(b, now) >= float64(l.limit.Burst) {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < n {
		return
	}
	evictOldest(l.buckets, func(b *bucket) time.Time { return b.last })
}

// evictOldest drops the older half of m by the time seen returns.
func evictOldest[V any](m map[string]V, seen func(V) time.Time) {
	if len(m) == 0 {
		return
	}
	times := make([]time.Time, 0, len(m))
	for _, v := range m {
		times = append(times, seen(v))
	}
	slices.SortFunc(times, time.Time.Compare)
	cut := times[(len(times)-1)/2]
	for k, v := range m {
		if !seen(v).After(cut) {
			delete(m, k)
		}
	}
}

// RetryAfterSeconds rounds a wait up to whole seconds, at least one, for a
// Retry-After header.
func RetryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	return max(s, 1)
}
