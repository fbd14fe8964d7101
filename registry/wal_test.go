package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// reopen closes s and opens its directory again.
func reopen(t *testing.T, s *Store, dir string, opts Options) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openDir(t, dir, opts)
}

// writeHistory makes a history touching every kind of record and change.
func writeHistory(t *testing.T, s *Store) {
	t.Helper()
	update(t, s, testFixture().putAll)
	update(t, s, func(tx *Txn) error { return tx.DeleteClient("c1") })
	update(t, s, func(tx *Txn) error {
		c := tx.Client("c2").Copy()
		c.Name = "renamed"
		return errors.Join(tx.PutClient(c), tx.DeleteUser("bob"),
			tx.DeleteRevocation("jti:abc"), tx.DeleteConsent("alice", "c2"))
	})
	for i := range 20 {
		update(t, s, func(tx *Txn) error {
			return tx.PutRefreshToken(testRefresh(fmt.Sprint("h", i), "g", "c3"))
		})
	}
}

func TestReopen(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"defaults", Options{}},
		{"small segments", Options{SegmentSize: 600}},
		{"no group commit", Options{NoGroupCommit: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := openTest(t, tt.opts)
			writeHistory(t, s)
			want := stateOf(s)
			s = reopen(t, s, dir, tt.opts)
			if diff := cmp.Diff(want, stateOf(s)); diff != "" {
				t.Errorf("state after reopen (-want +got):\n%s", diff)
			}
			// Writes continue the log, and survive another reopen.
			update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("c9")) })
			want = stateOf(s)
			s = reopen(t, s, dir, tt.opts)
			if diff := cmp.Diff(want, stateOf(s)); diff != "" {
				t.Errorf("state after second reopen (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	s, dir := openTest(t, Options{SegmentSize: 600})
	writeHistory(t, s)
	l, err := listDir(OSFS{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.segments) < 5 {
		t.Errorf("got %d segments with a 600-byte segment size, want several", len(l.segments))
	}
}

func TestEmptyUpdateWritesNothing(t *testing.T) {
	s, _ := openTest(t, Options{})
	before := s.durable
	update(t, s, func(tx *Txn) error { _ = tx.Client("x"); return nil })
	if s.durable != before {
		t.Errorf("an Update without changes moved the log from %+v to %+v", before, s.durable)
	}
}

func TestLock(t *testing.T) {
	s, dir := openTest(t, Options{})
	_, err := Open(context.Background(), dir, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	lock := filepath.Join(dir, lockName)
	holder := fmt.Sprintf("process %d holds %s", os.Getpid(), lock)
	for _, want := range []string{holder, "stop it first"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	reopen(t, s, dir, Options{})
}

func TestClosed(t *testing.T) {
	s, _ := openTest(t, Options{})
	update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("c1")) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err := s.Update(context.Background(), func(tx *Txn) error { return nil })
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close = %v, want ErrClosed", err)
	}
	if s.Client("c1") == nil {
		t.Errorf("reads stopped working after Close")
	}
}

func TestConcurrentUpdates(t *testing.T) {
	for _, noGroup := range []bool{false, true} {
		t.Run(fmt.Sprint("NoGroupCommit=", noGroup), func(t *testing.T) {
			opts := Options{NoGroupCommit: noGroup, SegmentSize: 16 << 10}
			s, dir := openTest(t, opts)
			const writers, each = 8, 40
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						id := fmt.Sprintf("w%d-%d", w, i)
						err := s.Update(context.Background(), func(tx *Txn) error {
							return tx.PutClient(testClient(id))
						})
						if err != nil {
							t.Errorf("Update %s: %v", id, err)
							return
						}
						if s.Client(id) == nil {
							t.Errorf("client %s not visible after its Update returned", id)
						}
					}
				})
			}
			wg.Wait()
			s = reopen(t, s, dir, opts)
			if got := len(s.Clients()); got != writers*each {
				t.Errorf("got %d clients after reopen, want %d", got, writers*each)
			}
		})
	}
}

// TestBatchedUpdatesFailAlone runs concurrent Updates, which the store runs
// in shared batches, where some fail or panic after a write: only their own
// changes are dropped, and every Update sees those of the Updates before it.
func TestBatchedUpdatesFailAlone(t *testing.T) {
	s, dir := openTest(t, Options{})
	update(t, s, func(tx *Txn) error { return tx.PutUser(&User{Name: "counter"}) })
	const writers, each = 16, 30
	boom := errors.New("boom")
	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		failed, panics int
	)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				var err error
				panicked := func() (panicked bool) {
					defer func() {
						if p := recover(); p != nil {
							if p != "boom" {
								t.Errorf("Update re-raised %v, want boom", p)
							}
							panicked = true
						}
					}()
					err = s.Update(context.Background(), func(tx *Txn) error {
						if tx.Client("bad") != nil {
							t.Errorf("the write of a failed Update is visible to a Txn")
						}
						switch (w + i) % 3 {
						case 0:
							return errors.Join(tx.PutClient(testClient("bad")), boom)
						case 1:
							tx.PutClient(testClient("bad"))
							panic("boom")
						}
						u := tx.User("counter").Copy()
						u.PasswordHash += "x"
						return tx.PutUser(u)
					})
					return false
				}()
				mu.Lock()
				switch {
				case panicked:
					panics++
				case errors.Is(err, boom):
					failed++
				case err != nil:
					t.Errorf("Update: %v", err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	want := writers*each - failed - panics
	check := func(s *Store) {
		t.Helper()
		if s.Client("bad") != nil {
			t.Errorf("the write of a failed Update is visible")
		}
		if got := len(s.User("counter").PasswordHash); got != want {
			t.Errorf("counter = %d, want %d (%d failed, %d panicked)", got, want, failed, panics)
		}
	}
	check(s)
	check(reopen(t, s, dir, Options{}))
}
