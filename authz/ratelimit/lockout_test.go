package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestLockout(t *testing.T) {
	t.Parallel()
	p := LockoutPolicy{Failures: 3, Window: time.Minute, Lock: 10 * time.Minute,
		MaxLock: 25 * time.Minute, Forget: 2 * time.Hour}
	l := NewLockout(p, 0)
	now := t0
	failN := func(key string, n int) time.Duration {
		t.Helper()
		var lock time.Duration
		for i := range n {
			now = now.Add(time.Second)
			if lock = l.Fail(key, now); lock != 0 && i < n-1 {
				t.Fatalf("failure %d of %d locked already", i+1, n)
			}
		}
		return lock
	}

	if got := failN("admin|10.0.0.1", 3); got != 10*time.Minute {
		t.Fatalf("first lockout %v, want 10m", got)
	}
	if got := l.Locked("admin|10.0.0.1", now); got != 10*time.Minute {
		t.Errorf("Locked = %v, want 10m", got)
	}
	// The same user from elsewhere, and another user from here, are free.
	if l.Locked("admin|10.0.0.2", now) != 0 || l.Locked("bob|10.0.0.1", now) != 0 {
		t.Errorf("lockout leaked to another key")
	}
	// Failures while locked neither count nor stretch the lock.
	if got := failN("admin|10.0.0.1", 5); got != 0 {
		t.Errorf("failure while locked returned %v", got)
	}
	if got := l.Locked("admin|10.0.0.1", now); got != 10*time.Minute-5*time.Second {
		t.Errorf("lock stretched to %v", got)
	}

	// Consecutive lockouts double, up to the maximum.
	now = now.Add(10 * time.Minute)
	if got := failN("admin|10.0.0.1", 3); got != 20*time.Minute {
		t.Errorf("second lockout %v, want 20m", got)
	}
	now = now.Add(20 * time.Minute)
	if got := failN("admin|10.0.0.1", 3); got != 25*time.Minute {
		t.Errorf("third lockout %v, want the 25m maximum", got)
	}

	// Failures spread wider than the window never lock.
	for range 10 {
		now = now.Add(2 * time.Minute)
		if l.Fail("slow|10.0.0.1", now) != 0 {
			t.Fatalf("spread-out failures locked")
		}
	}

	// After Forget without failures the doubling starts again.
	now = now.Add(3 * time.Hour)
	if got := failN("admin|10.0.0.1", 3); got != 10*time.Minute {
		t.Errorf("lockout after a quiet spell %v, want 10m again", got)
	}

	// Success forgets the key.
	failN("carol|10.0.0.1", 2)
	l.Reset("carol|10.0.0.1")
	if got := failN("carol|10.0.0.1", 2); got != 0 {
		t.Errorf("failures before a success still counted")
	}
}

func TestLockoutPolicy(t *testing.T) {
	t.Parallel()
	d := LockoutPolicy{}.WithDefaults()
	if d.Failures != 5 || d.Window != 15*time.Minute || d.Lock != 15*time.Minute ||
		d.MaxLock != 4*time.Hour || d.Forget != 24*time.Hour {
		t.Errorf("defaults %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	if d := (LockoutPolicy{Lock: 8 * time.Hour}).WithDefaults(); d.MaxLock != 8*time.Hour {
		t.Errorf("max lock %v shorter than a long first lock", d.MaxLock)
	}
	bad := []LockoutPolicy{
		{Failures: -1, Window: 1, Lock: 1, MaxLock: 1, Forget: 1},
		{Failures: 1, Window: -1, Lock: 1, MaxLock: 1, Forget: 1},
		{Failures: 1, Window: 1, Lock: 2, MaxLock: 1, Forget: 1},
	}
	for _, p := range bad {
		if p.Validate() == nil {
			t.Errorf("Validate(%+v) accepted", p)
		}
	}
	off := NewLockout(LockoutPolicy{Off: true}, 0)
	for range 100 {
		if off.Fail("k", t0) != 0 || off.Locked("k", t0) != 0 {
			t.Fatal("disabled lockout locked")
		}
	}
}

func TestLockoutBoundedMemory(t *testing.T) {
	t.Parallel()
	l := NewLockout(LockoutPolicy{Failures: 2}, 10)
	now := t0
	l.Fail("locked", now)
	l.Fail("locked", now)
	for i := range 50 {
		now = now.Add(time.Second)
		l.Fail(fmt.Sprint("spray", i), now)
	}
	if n := l.Len(); n > 10 {
		t.Errorf("%d keys kept, want at most 10", n)
	}
	if l.Locked("locked", now) == 0 {
		t.Errorf("a lock in force was evicted by a spray of single failures")
	}
}
