package ratelimit

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Defaults of LockoutPolicy.
const (
	DefaultLockoutFailures = 5
	DefaultLockoutWindow   = 15 * time.Minute
	DefaultLockoutLock     = 15 * time.Minute
	DefaultLockoutMaxLock  = 4 * time.Hour
	DefaultLockoutForget   = 24 * time.Hour
)

// LockoutPolicy says when a key is locked and for how long.
type LockoutPolicy struct {
	// Failures is how many failures lock the key (default 5). Each failure
	// counts if it comes within Window of the previous one.
	Failures int
	// Window is how long a failure is remembered (default 15m).
	Window time.Duration
	// Lock is the first lock's length (default 15m). Each consecutive
	// lockout doubles it, up to MaxLock (default 4h).
	Lock    time.Duration
	MaxLock time.Duration
	// Forget is how long after the last failure a key starts afresh, its
	// lock doubling included (default 24h).
	Forget time.Duration
	// Off disables lockouts.
	Off bool
}

// WithDefaults returns p with zero fields set to their defaults.
func (p LockoutPolicy) WithDefaults() LockoutPolicy {
	p.Failures = cmp.Or(p.Failures, DefaultLockoutFailures)
	p.Window = cmp.Or(p.Window, DefaultLockoutWindow)
	p.Lock = cmp.Or(p.Lock, DefaultLockoutLock)
	p.MaxLock = cmp.Or(p.MaxLock, max(DefaultLockoutMaxLock, p.Lock))
	p.Forget = cmp.Or(p.Forget, DefaultLockoutForget)
	return p
}

// Validate reports a policy that cannot work.
func (p LockoutPolicy) Validate() error {
	if p.Off {
		return nil
	}
	var errs []error
	if p.Failures < 1 {
		errs = append(errs, fmt.Errorf("lockout failures %d: must be at least 1", p.Failures))
	}
	// Sorted, so that the errors come in the same order every time.
	checks := map[string]time.Duration{
		"window": p.Window, "lock": p.Lock, "max lock": p.MaxLock, "forget": p.Forget,
	}
	for _, name := range slices.Sorted(maps.Keys(checks)) {
		d := checks[name]
		if d <= 0 {
			errs = append(errs, fmt.Errorf("lockout %s %v: must be positive", name, d))
		}
	}
	if p.MaxLock < p.Lock {
		errs = append(errs, fmt.Errorf("lockout max lock %v is shorter than the lock %v",
			p.MaxLock, p.Lock))
	}
	return errors.Join(errs...)
}

// lockEntry is one key's failure record.
type lockEntry struct {
	failures int       // failures since the last lock, each within Window
	last     time.Time // the last failure
	strikes  int       // lockouts so far, each doubling the next
	until    time.Time // locked until
}

// Lockout locks keys after repeated failures. It is safe for concurrent use.
type Lockout struct {
	p       LockoutPolicy
	maxKeys int

	mu      sync.Mutex
	entries map[string]*lockEntry
}

// NewLockout returns a Lockout for p (taken through WithDefaults) keeping at
// most maxKeys keys (DefaultMaxKeys when maxKeys <= 0).
func NewLockout(p LockoutPolicy, maxKeys int) *Lockout {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Lockout{p: p.WithDefaults(), maxKeys: maxKeys, entries: map[string]*lockEntry{}}
}

// Locked returns how long key stays locked at now, or 0.
func (l *Lockout) Locked(key string, now time.Time) time.Duration {
	if l.p.Off {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.entries[key]; e != nil && now.Before(e.until) {
		return e.until.Sub(now)
	}
	return 0
}

// Fail records a failure of key at now. When the failure locks the key it
// returns the lock's length; otherwise 0. Failures while locked are not
// counted, so that a lock cannot be stretched forever.
func (l *Lockout) Fail(key string, now time.Time) time.Duration {
	if l.p.Off {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		if len(l.entries) >= l.maxKeys {
			l.sweep(now)
		}
		e = &lockEntry{}
		l.entries[key] = e
	}
	if now.Before(e.until) {
		return 0
	}
	if now.Sub(e.last) > l.p.Forget {
		e.strikes = 0
	}
	if now.Sub(e.last) > l.p.Window {
		e.failures = 0
	}
	e.failures++
	e.last = now
	if e.failures < l.p.Failures {
		return 0
	}
	lock := l.p.Lock
	for range e.strikes {
		if lock >= l.p.MaxLock/2 {
			lock = l.p.MaxLock
			break
		}
		lock *= 2
	}
	lock = min(lock, l.p.MaxLock)
	e.strikes++
	e.failures = 0
	e.until = now.Add(lock)
	return lock
}

// Reset forgets key, after a success.
func (l *Lockout) Reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, key)
}

// Len returns the number of keys l holds.
func (l *Lockout) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// sweep drops the entries that no longer affect anything and, if that frees
// nothing, the older half by last failure or end of lock (so locks in force
// go last).
func (l *Lockout) sweep(now time.Time) {
	n := len(l.entries)
	for k, e := range l.entries {
		idle := now.Sub(e.last)
		if !now.Before(e.until) && (idle > l.p.Forget || e.strikes == 0 && idle > l.p.Window) {
			delete(l.entries, k)
		}
	}
	if len(l.entries) < n {
		return
	}
	evictOldest(l.entries, func(e *lockEntry) time.Time {
		if e.until.After(e.last) {
			return e.until
		}
		return e.last
	})
}
