package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The tests of this file try to break the rebuilding of the base after a
// snapshot (rebase.go): changes of every kind made between the state a
// snapshot is written from and the swap, failed and panicking Updates,
// failed fsyncs, Close, automatic snapshots and Housekeep, all racing the
// rounds of a rebase, with readers watching the swap. What the store
// acknowledged is replayed on a reference store that never snapshots.

// journal keeps the Update functions a store ran, in the order it ran them
// (they run one at a time, holding the writer lock), and which of them were
// acknowledged, so that those can be replayed on a reference store.
type journal struct {
	mu   sync.Mutex
	runs []journaled
}

type journaled struct {
	name  string
	fn    func(tx *Txn) error
	acked bool
}

// update runs fn in an Update of s and records it. A panic of fn is raised
// again, as Update does.
func (j *journal) update(s *Store, name string, fn func(tx *Txn) error) error {
	run, ack := j.record(name, fn)
	err := s.Update(context.Background(), run)
	ack(err)
	return err
}

// record returns fn recording itself in the journal when it runs, and a
// function to call with the outcome of its Update.
func (j *journal) record(name string, fn func(tx *Txn) error) (
	func(tx *Txn) error, func(error)) {
	i := -1
	run := func(tx *Txn) error {
		j.mu.Lock()
		i = len(j.runs)
		j.runs = append(j.runs, journaled{name: name, fn: fn})
		j.mu.Unlock()
		return fn(tx)
	}
	ack := func(err error) {
		if err == nil && i >= 0 {
			j.mu.Lock()
			j.runs[i].acked = true
			j.mu.Unlock()
		}
	}
	return run, ack
}

// must runs fn as update does and fails the test if the Update fails.
func (j *journal) must(t *testing.T, s *Store, name string, fn func(tx *Txn) error) {
	t.Helper()
	if err := j.update(s, name, fn); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// replay runs the acknowledged functions, in the order the store ran them,
// on a fresh store that never snapshots, and returns it.
func (j *journal) replay(t *testing.T) *Store {
	t.Helper()
	ref, _ := openTest(t, Options{SnapshotBytes: -1, SnapshotRecords: -1,
		Logger: slog.New(slog.DiscardHandler)})
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, r := range j.runs {
		if !r.acked {
			continue
		}
		n++
		if err := ref.Update(context.Background(), r.fn); err != nil {
			t.Fatalf("replaying acknowledged Update %d (%s): %v", n, r.name, err)
		}
	}
	return ref
}

// acked returns how many Updates were acknowledged.
func (j *journal) acked() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, r := range j.runs {
		if r.acked {
			n++
		}
	}
	return n
}

// setSettled sets rebaseSettled for the test.
func setSettled(t *testing.T, n int) {
	t.Helper()
	old := rebaseSettled
	rebaseSettled = n
	t.Cleanup(func() { rebaseSettled = old })
}

// Records outside layerOp's key universe that the tests of this file watch:
// stable ones are never changed after seeding; doomed ones are deleted in
// order by the counter writer, which counts them in the user "counter".
const (
	stableN     = 8
	doomedN     = 40
	stableSub   = "stable-sub"
	doomedSub   = "doomed-sub"
	counterUser = "counter"
)

func stableID(i int) string { return fmt.Sprint("stable-", i) }
func doomedID(i int) string { return fmt.Sprint("doomed-", i) }

// putWatched puts the stable and doomed records whose index has the parity
// given, so that seeding in two steps leaves some in the base and some in the
// delta.
func putWatched(parity int) func(tx *Txn) error {
	return func(tx *Txn) error {
		var errs []error
		for i := parity; i < stableN; i += 2 {
			id := stableID(i)
			errs = append(errs, tx.PutClient(testClient(id)),
				tx.PutRefreshToken(testRefresh("stable-rt-"+id, "stable-grant", id)),
				tx.PutConsent(&Consent{Subject: stableSub, ClientID: id, GrantedAt: t0}),
				tx.PutRevocation(&Revocation{Key: "jti:" + id, CreatedAt: t0,
					ExpiresAt: t0.AddDate(1, 0, 0)}))
		}
		for i := parity; i < doomedN; i += 2 {
			id := doomedID(i)
			errs = append(errs, tx.PutClient(testClient(id)),
				tx.PutConsent(&Consent{Subject: doomedSub, ClientID: id, GrantedAt: t0}))
		}
		if parity == 0 {
			errs = append(errs, tx.PutUser(&User{Name: counterUser, PasswordHash: "0"}))
		}
		return errors.Join(errs...)
	}
}

// seedLayered writes the fixture and the watched records, half of them
// moved into the base by a snapshot and a reopen, then changes some base
// records so that the delta holds replacements and tombstones.
func seedLayered(t *testing.T, opts Options, j *journal) (*Store, string) {
	t.Helper()
	s, dir := openTest(t, opts)
	j.must(t, s, "fixture", testFixture().putAll)
	j.must(t, s, "watched (even)", putWatched(0))
	snapshot(t, s)
	s = reopen(t, s, dir, opts)
	j.must(t, s, "watched (odd)", putWatched(1))
	j.must(t, s, "change the base", changeBase)
	if s.layers().base.records() == 0 || deltaSize(s.layers()) == 0 {
		t.Fatalf("seeding left %d records in the base and %d in the delta, want some in each",
			s.layers().base.records(), deltaSize(s.layers()))
	}
	return s, dir
}

// counterOf returns the value of the counter in st, -1 when missing.
func counterOf(u *User) int {
	if u == nil {
		return -1
	}
	var n int
	fmt.Sscan(u.PasswordHash, &n)
	return n
}

// checkWatched checks the watched records in st, whose counter must be at
// least least: every stable record through every kind of read, and none of
// the doomed records the counter says are deleted. It returns the counter.
func checkWatched(st layers, least int) (int, error) {
	c := counterOf(first[User](st, tableUsers, counterUser))
	if c < least {
		return c, fmt.Errorf("counter %d, after %d was seen", c, least)
	}
	for i := range stableN {
		id := stableID(i)
		switch {
		case first[Client](st, tableClients, id) == nil:
			return c, fmt.Errorf("stable client %s missing", id)
		case first[RefreshToken](st, tableRefreshTokens, "stable-rt-"+id) == nil:
			return c, fmt.Errorf("refresh token of %s missing", id)
		case len(all[RefreshToken](st, tableRefreshTokens, indexClient, id)) != 1:
			return c, fmt.Errorf("refresh tokens of %s by client: %d, want 1", id,
				len(all[RefreshToken](st, tableRefreshTokens, indexClient, id)))
		case lookup[Consent](st, tableConsents, stableSub, id) == nil:
			return c, fmt.Errorf("consent of %s missing", id)
		case first[Revocation](st, tableRevocations, "jti:"+id) == nil:
			return c, fmt.Errorf("revocation of %s missing", id)
		}
	}
	if n := len(all[Consent](st, tableConsents, indexID+"_prefix", stableSub)); n != stableN {
		return c, fmt.Errorf("%d stable consents listed, want %d", n, stableN)
	}
	if n := len(all[RefreshToken](st, tableRefreshTokens, indexGrantID,
		"stable-grant")); n != stableN {
		return c, fmt.Errorf("%d stable refresh tokens by grant, want %d", n, stableN)
	}
	for i := range min(c, doomedN) {
		if first[Client](st, tableClients, doomedID(i)) != nil ||
			lookup[Consent](st, tableConsents, doomedSub, doomedID(i)) != nil {
			return c, fmt.Errorf("doomed %s is back at counter %d", doomedID(i), c)
		}
	}
	left := len(all[Consent](st, tableConsents, indexID+"_prefix", doomedSub))
	if want := doomedN - min(c, doomedN); left != want {
		// The counter and the doomed records change in the same Update.
		return c, fmt.Errorf("%d doomed consents listed at counter %d, want %d", left, c, want)
	}
	return c, nil
}

// countDoomed deletes the next doomed record and advances the counter.
func countDoomed(i int) func(tx *Txn) error {
	return func(tx *Txn) error {
		if err := tx.DeleteClient(doomedID(i)); err != nil {
			return err
		}
		return tx.PutUser(&User{Name: counterUser, PasswordHash: fmt.Sprint(i + 1)})
	}
}

// randomUpdate returns an Update of one to three layerOp changes, which fails
// when one of them does (deleting a missing record), is sometimes abandoned
// and sometimes panics after making its changes.
func randomUpdate(r *rand.Rand, step int) (string, func(tx *Txn) error) {
	var names []string
	var fns []func(tx *Txn) error
	for range 1 + r.IntN(3) {
		name, fn := layerOp(r, step)
		names, fns = append(names, name), append(fns, fn)
	}
	end := r.IntN(16)
	switch end {
	case 0:
		names = append(names, "(abandoned)")
	case 1:
		names = append(names, "(panics)")
	}
	return strings.Join(names, ", "), func(tx *Txn) error {
		for i, fn := range fns {
			if err := fn(tx); err != nil {
				return fmt.Errorf("%s: %w", names[i], err)
			}
		}
		switch end {
		case 0:
			return errAbandon
		case 1:
			panic("panicking on purpose")
		}
		return nil
	}
}

// rebaseRace describes a run of TestRebaseRacesEverything.
type rebaseRace struct {
	name     string
	opts     Options
	settled  int  // rebaseSettled
	faults   bool // toggle log fsync and snapshot rename failures
	explicit bool // call Snapshot in a loop
	hk       bool // call Housekeep in a loop
}

// TestRebaseRacesEverything runs writers of every kind of change (some
// failing, some panicking), a writer deleting base records in order,
// snapshots with their rebases, Housekeep and, in some runs, disk faults, all
// at once, while readers check every swap of the read view and of the
// writers' state: stable records never vanish, deleted ones never come
// back, the state never goes back. Then the store must hold what the
// acknowledged Updates make, as must a reopen.
func TestRebaseRacesEverything(t *testing.T) {
	hkOpts := Options{SnapshotRecords: 9, SegmentSize: 3000,
		HousekeepInterval: time.Millisecond, Now: func() time.Time { return t0 }}
	tests := []rebaseRace{
		{name: "group commit, every round", settled: 0, explicit: true, hk: true},
		{name: "no group commit, every round", opts: Options{NoGroupCommit: true},
			explicit: true, hk: true},
		{name: "automatic snapshots and housekeeping", opts: hkOpts, settled: 0},
		{name: "automatic and explicit snapshots", opts: Options{SnapshotRecords: 5},
			settled: 2, explicit: true, hk: true},
		{name: "fsync and snapshot faults", settled: 0, faults: true, explicit: true},
		{name: "fsync faults without group commit", opts: Options{NoGroupCommit: true},
			settled: 0, faults: true, explicit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runRebaseRace(t, tt) })
	}
}

func runRebaseRace(t *testing.T, tt rebaseRace) {
	setSettled(t, tt.settled)
	logs := &logRecorder{}
	ffs := newFaultFS()
	opts := tt.opts
	opts.FS, opts.Logger = ffs, slog.New(logs)
	j := &journal{}
	s, dir := seedLayered(t, opts, j)
	firstBase := s.layers().base

	var (
		stop     = make(chan struct{})
		work     sync.WaitGroup // writers, whose end stops the rest
		bg       sync.WaitGroup
		counter  atomic.Int64 // acknowledged value of the counter
		failures atomic.Int64
	)
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	for w := range 3 {
		work.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 40 {
				name, fn := randomUpdate(r, w*1000+i)
				func() {
					defer func() {
						if p := recover(); p != nil && !strings.Contains(name, "(panics)") {
							t.Errorf("Update %s panicked: %v", name, p)
						}
					}()
					err := j.update(s, name, fn)
					if err != nil && !errors.Is(err, ErrNotFound) &&
						!errors.Is(err, errAbandon) && !errors.Is(err, ErrUnavailable) {
						t.Errorf("Update %s: %v", name, err)
					}
					if errors.Is(err, ErrUnavailable) && !tt.faults {
						t.Errorf("Update %s without faults: %v", name, err)
					}
				}()
			}
		})
	}
	// A writer of many keys per Update, so that rebases have many keys to
	// catch up with.
	work.Go(func() {
		for i := range 10 {
			err := j.update(s, fmt.Sprint("bulk ", i), func(tx *Txn) error {
				for k := range 150 {
					c := testClient(fmt.Sprint("bulk-", k))
					c.Name = fmt.Sprint("v", i)
					if i%3 == 2 && k%2 == 0 {
						if tx.Client(c.ID) == nil {
							continue // the Update that put it failed
						}
						if err := tx.DeleteClient(c.ID); err != nil {
							return err
						}
						continue
					}
					if err := tx.PutClient(c); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil && !(tt.faults && errors.Is(err, ErrUnavailable)) {
				t.Errorf("bulk Update %d: %v", i, err)
			}
		}
	})
	work.Go(func() {
		for i := 0; i < doomedN; {
			err := j.update(s, fmt.Sprint("count ", i), countDoomed(i))
			switch {
			case err == nil:
				i++
				counter.Store(int64(i))
			case errors.Is(err, ErrUnavailable) && tt.faults:
				failures.Add(1)
				time.Sleep(100 * time.Microsecond)
			default:
				t.Errorf("counting %d: %v", i, err)
				return
			}
		}
	})
	// A reader of the Store's view, and one of the writers' state in a Txn.
	bg.Go(func() {
		seen := 0
		for !stopped() {
			c, err := checkWatched(s.layers(), seen)
			if err != nil {
				t.Errorf("Store reads: %v", err)
				return
			}
			seen = c
		}
	})
	bg.Go(func() {
		for !stopped() {
			acked := int(counter.Load())
			err := j.update(s, "read in a Txn", func(tx *Txn) error {
				if _, err := checkWatched(tx.layers(), acked); err != nil {
					t.Errorf("Txn reads: %v", err)
				}
				return nil
			})
			if err != nil && !(tt.faults && errors.Is(err, ErrUnavailable)) {
				t.Errorf("reading in a Txn: %v", err)
				return
			}
		}
	})
	if tt.explicit {
		bg.Go(func() {
			for !stopped() {
				err := s.Snapshot(context.Background())
				if err != nil && !(tt.faults && errors.Is(err, syscall.ENOSPC)) {
					t.Errorf("Snapshot: %v", err)
					return
				}
			}
		})
	}
	if tt.hk {
		bg.Go(func() {
			for !stopped() {
				_, err := s.Housekeep(context.Background(), t0)
				if err != nil && !(tt.faults && errors.Is(err, ErrUnavailable)) {
					t.Errorf("Housekeep: %v", err)
					return
				}
			}
		})
	}
	if tt.faults {
		bg.Go(func() {
			for i := 0; !stopped(); i++ {
				if i%2 == 0 {
					ffs.set("sync", walPrefix, syscall.EIO)
					ffs.set("rename", snapPrefix, syscall.ENOSPC)
				} else {
					ffs.clear()
				}
				time.Sleep(time.Duration(1+i%3) * time.Millisecond)
			}
			ffs.clear()
		})
	}
	work.Wait()
	close(stop)
	bg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// A last write and snapshot with no fault must rebuild the base.
	j.must(t, s, "last", func(tx *Txn) error { return tx.PutClient(testClient("last")) })
	before := s.layers().base
	snapshot(t, s)
	if s.layers().base == before {
		t.Errorf("the last snapshot did not rebuild the base; logs:\n%s",
			strings.Join(logs.matching("WARN"), "\n"))
	}
	if s.layers().base == firstBase {
		t.Error("the base was never rebuilt")
	}
	rebuilt := logs.matching("INFO", "base rebuilt")
	if warns := logs.matching("could not rebuild"); !tt.faults && len(warns) > 0 {
		t.Errorf("rebases failed without faults:\n%s", strings.Join(warns, "\n"))
	}
	meanwhile := 0
	for _, l := range rebuilt {
		if !strings.Contains(l, "changed_meanwhile=0 ") {
			meanwhile++
		}
	}
	t.Logf("%d acknowledged Updates, %d counter retries, %d rebases, %d with changes meanwhile",
		j.acked(), failures.Load(), len(rebuilt), meanwhile)
	checkMinimalDelta(t, s.layers())

	if _, err := s.Housekeep(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
	ref := j.replay(t)
	if _, err := ref.Housekeep(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
	want := storeView(t, ref)
	if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
		t.Fatalf("state after the race (-acknowledged +store):\n%s", diff)
	}
	if _, err := checkWatched(s.layers(), doomedN); err != nil {
		t.Error(err)
	}
	s = reopen(t, s, dir, Options{})
	if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
		t.Errorf("state after reopen (-acknowledged +store):\n%s", diff)
	}
}

// checkMinimalDelta checks that st's delta holds only what differs from its
// base: no tombstone for a key the base lacks, no record the base holds as
// it is.
func checkMinimalDelta(t *testing.T, st layers) {
	t.Helper()
	for _, c := range snapTables {
		it, err := st.tx.Get(c.table, indexID)
		if err != nil {
			t.Fatal(err)
		}
		for e := it.Next(); e != nil; e = it.Next() {
			key := idKey(c.table, e)
			inBase := st.base.get(c.table, key)
			if _, gone := e.(*tombstone); gone && inBase == nil {
				t.Errorf("%s %q: a tombstone for a key the base lacks", c.table, key)
			}
			if e == inBase {
				t.Errorf("%s %q: the delta holds the base's record", c.table, key)
			}
		}
	}
}

// rebaseStep is what TestRebaseAfterChanges does between writing a
// snapshot and rebuilding the base from it.
type rebaseStep struct {
	name string
	opts Options
	// between changes the store; it returns how many keys it changed at
	// most, for the size of the new delta.
	between func(t *testing.T, s *Store, ffs *faultFS, j *journal) int
	wantErr error // from rebase; nil: the base is rebuilt
}

// TestRebaseAfterChanges writes a snapshot, changes the store in a given way,
// then rebuilds the base: the rebuilt (or kept) base must read as the
// acknowledged Updates say, with a delta holding only the changes made
// after the snapshot, before and after a reopen.
func TestRebaseAfterChanges(t *testing.T) {
	errBroken := ErrUnavailable
	tests := []rebaseStep{
		{name: "nothing", between: func(*testing.T, *Store, *faultFS, *journal) int { return 0 }},
		{name: "every kind of change", between: everyChange},
		{name: "failed and panicking Updates", between: failedChanges},
		{name: "fsync failed", between: fsyncFails(false), wantErr: errBroken},
		{name: "fsync failed, then a write", between: fsyncFails(true)},
		{name: "no group commit, fsync failed", opts: Options{NoGroupCommit: true},
			between: fsyncFails(false), wantErr: errBroken},
		{name: "no group commit, fsync failed, then a write",
			opts: Options{NoGroupCommit: true}, between: fsyncFails(true)},
		{name: "full disk, then a write", between: func(t *testing.T, s *Store, ffs *faultFS,
			j *journal) int {
			ffs.set("write", walPrefix, syscall.ENOSPC)
			if err := j.update(s, "fails", changeSeeded); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Update on a full disk = %v, want ErrUnavailable", err)
			}
			ffs.clear()
			return everyChange(t, s, ffs, j)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ffs := newFaultFS()
			opts := tt.opts
			opts.FS = ffs
			j := &journal{}
			s, dir := seedLayered(t, opts, j)
			old := s.layers().base

			var changed int
			var err error
			func() {
				s.snapMu.Lock()
				defer s.snapMu.Unlock() // also when between fails the test
				st, serr := s.snapshot(context.Background())
				if serr != nil || st.tx == nil {
					t.Fatalf("snapshot: %v (written: %v)", serr, st.tx != nil)
				}
				changed = tt.between(t, s, ffs, j)
				err = s.rebase(st)
			}()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("rebase = %v, want %v", err, tt.wantErr)
			}
			if s.tracked != nil {
				t.Error("changes are still tracked after the rebase")
			}
			rebuilt := s.layers().base != old
			if rebuilt != (tt.wantErr == nil) {
				t.Errorf("base rebuilt: %v, want %v", rebuilt, tt.wantErr == nil)
			}
			if rebuilt {
				checkMinimalDelta(t, s.layers())
				if n := deltaSize(s.layers()); n > changed {
					t.Errorf("the new delta holds %d entries, more than the %d keys changed",
						n, changed)
				}
			}
			ffs.clear()
			j.must(t, s, "after", func(tx *Txn) error {
				return errors.Join(tx.DeleteClient("c3"), tx.PutClient(testClient("after")))
			})
			ref := j.replay(t)
			want := storeView(t, ref)
			if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
				t.Fatalf("state after the rebase (-acknowledged +store):\n%s", diff)
			}
			s = reopen(t, s, dir, Options{})
			if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
				t.Errorf("state after reopen (-acknowledged +store):\n%s", diff)
			}
		})
	}
}

// everyChange changes records of every table, in the base, the old delta
// and new: puts, replacements, deletes, a cascade, a delete and put of the
// same key, and a put and delete of a new one.
func everyChange(t *testing.T, s *Store, _ *faultFS, j *journal) int {
	t.Helper()
	j.must(t, s, "every change", func(tx *Txn) error {
		c := testClient("c3")
		c.Name = "again"
		return errors.Join(
			tx.DeleteClient("c2"),        // in the base, replaced in the old delta
			tx.DeleteClient(doomedID(0)), // in the base, with a consent
			tx.PutClient(c),
			tx.DeleteUser("admin"),
			tx.PutUser(&User{Name: "admin", PasswordHash: "newer"}),
			tx.DeleteConsent(stableSub, stableID(1)),
			tx.PutConsent(&Consent{Subject: "alice", ClientID: "c9", GrantedAt: t0}),
			tx.PutRevocation(&Revocation{Key: "jti:new", ExpiresAt: t0}),
			tx.DeleteRevocation("jti:"+stableID(0)),
			tx.PutAuthCode(&AuthCode{Hash: "code-new", ClientID: "c3", ExpiresAt: t0}),
			tx.PutRefreshToken(testRefresh("rt-new", "g7", "c3")),
			tx.DeleteSigningKey("k2"),
			tx.PutClient(testClient("ephemeral")),
			tx.DeleteClient("ephemeral"),
		)
	})
	j.must(t, s, "change again", func(tx *Txn) error {
		return errors.Join(tx.DeleteRefreshToken("rt-new"), tx.DeleteAuthCode("code-new"),
			tx.PutConsent(&Consent{Subject: stableSub, ClientID: stableID(1), Scope: "back",
				GrantedAt: t0}))
	})
	return 20
}

// failedChanges makes Updates whose changes are undone: abandoned, panicking
// and failing ones, over base and delta records, among ones that succeed.
func failedChanges(t *testing.T, s *Store, ffs *faultFS, j *journal) int {
	t.Helper()
	undone := func(tx *Txn) error {
		return errors.Join(tx.DeleteClient(stableID(0)), tx.DeleteClient(stableID(1)),
			tx.PutUser(&User{Name: counterUser, PasswordHash: "99"}),
			tx.DeleteConsent(stableSub, stableID(2)))
	}
	if err := j.update(s, "abandoned", func(tx *Txn) error {
		return errors.Join(undone(tx), errAbandon)
	}); !errors.Is(err, errAbandon) {
		t.Errorf("abandoned Update = %v", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panicking Update did not panic")
			}
		}()
		j.update(s, "panics", func(tx *Txn) error {
			undone(tx)
			panic("on purpose")
		})
	}()
	var fns []func(tx *Txn) error
	var acks []func(error)
	for i, fn := range []func(tx *Txn) error{
		func(tx *Txn) error { return tx.PutClient(testClient("batched")) },
		func(tx *Txn) error { return errors.Join(undone(tx), errAbandon) },
		func(tx *Txn) error { return tx.DeleteUser("admin") },
	} {
		run, ack := j.record(fmt.Sprint("batched ", i), fn)
		fns, acks = append(fns, run), append(acks, ack)
	}
	errs := inOneBatch(t, s, fns...)
	for i, err := range errs {
		acks[i](err)
	}
	if errs[0] != nil || !errors.Is(errs[1], errAbandon) || errs[2] != nil {
		t.Fatalf("batch: %v", errs)
	}
	return 2
}

// changeSeeded changes records of every table that seedLayered leaves,
// in the base and in the delta.
func changeSeeded(tx *Txn) error {
	c := testClient(doomedID(1))
	c.Name = "replaced"
	return errors.Join(
		tx.DeleteClient("c2"),
		tx.DeleteClient(doomedID(0)),
		tx.PutClient(c),
		tx.DeleteUser("admin"),
		tx.DeleteConsent(stableSub, stableID(0)),
		tx.DeleteRevocation("jti:"+stableID(2)),
		tx.DeleteSigningKey("k2"),
		tx.DeleteRefreshToken("stable-rt-"+stableID(4)),
		tx.PutAuthCode(&AuthCode{Hash: "code-x", ClientID: "c3", ExpiresAt: t0}),
	)
}

// fsyncFails makes an Update over base records fail its fsync, then, with
// recover, clears the fault and writes again (which rolls the failed
// changes back).
func fsyncFails(recover bool) func(*testing.T, *Store, *faultFS, *journal) int {
	return func(t *testing.T, s *Store, ffs *faultFS, j *journal) int {
		t.Helper()
		ffs.set("sync", walPrefix, syscall.EIO)
		if err := j.update(s, "fails", changeSeeded); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Update with a failing fsync = %v, want ErrUnavailable", err)
		}
		if !recover {
			return 0
		}
		ffs.clear()
		j.must(t, s, "recovers", func(tx *Txn) error {
			return tx.PutClient(testClient("recovered"))
		})
		return 1
	}
}

// TestRebaseCloseRace closes the store while writers run and snapshots
// rebuild the base: Close must return, later Updates and snapshots must
// fail without writing, and a reopen must show every acknowledged Update.
func TestRebaseCloseRace(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"group commit", Options{}},
		{"no group commit", Options{NoGroupCommit: true}},
		{"automatic snapshots", Options{SnapshotRecords: 3}},
	}
	for _, tt := range tests {
		for _, closeAt := range []int{1, 25} {
			t.Run(fmt.Sprint(tt.name, "/close at ", closeAt), func(t *testing.T) {
				setSettled(t, 0)
				j := &journal{}
				opts := tt.opts
				opts.Logger = slog.New(slog.DiscardHandler)
				s, dir := seedLayered(t, opts, j)
				var (
					wg      sync.WaitGroup
					counter atomic.Int64
					closed  = make(chan struct{})
				)
				wg.Go(func() {
					for i := 0; i < doomedN; i++ {
						err := j.update(s, fmt.Sprint("count ", i), countDoomed(i))
						if errors.Is(err, ErrClosed) {
							return
						}
						if err != nil {
							t.Errorf("counting %d: %v", i, err)
							return
						}
						counter.Store(int64(i + 1))
					}
				})
				for w := range 2 {
					wg.Go(func() {
						r := rand.New(rand.NewPCG(uint64(w), uint64(closeAt)))
						for i := 0; ; i++ {
							name, fn := randomUpdate(r, i)
							var err error
							func() {
								defer func() { recover() }()
								err = j.update(s, name, fn)
							}()
							if errors.Is(err, ErrClosed) {
								return
							}
						}
					})
				}
				wg.Go(func() {
					for {
						err := s.Snapshot(context.Background())
						if errors.Is(err, ErrClosed) {
							return // Close has begun
						}
						select {
						case <-closed:
							return
						default:
						}
						if err != nil {
							t.Errorf("Snapshot before Close: %v", err)
							return
						}
					}
				})
				for counter.Load() < int64(closeAt) && !t.Failed() {
					runtime.Gosched()
				}
				closeWithin(t, s, 20*time.Second)
				close(closed)
				wg.Wait()
				if err := j.update(s, "after Close", func(tx *Txn) error {
					return tx.PutClient(testClient("late"))
				}); !errors.Is(err, ErrClosed) {
					t.Errorf("Update after Close = %v, want ErrClosed", err)
				}
				want := storeView(t, j.replay(t))
				s = openDir(t, dir, Options{})
				if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
					t.Errorf("state after reopen (-acknowledged +store):\n%s", diff)
				}
			})
		}
	}
}

// closeWithin closes s, failing the test with every goroutine's stack if
// Close has not returned after d: a deadlock.
func closeWithin(t *testing.T, s *Store, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("Close did not return within %v: a deadlock?\n%s", d, buf)
	}
}

// roundHook is the primary key indexer of a table that calls fire the first
// time a rebase, on its own goroutine, takes the key of a given record of
// key: so a test can act in the middle of a rebase round, where the rebase
// looks up the keys changed in the round before.
type roundHook struct {
	keyIndexer
	key  string
	fire func()
	// Used only on the rebase's goroutine:
	seen   map[any]bool // the records fire was called for
	firing bool         // fire runs (and writes through the hooked indexer)
}

func (h *roundHook) FromObject(obj any) (bool, []byte, error) {
	ok, key, err := h.keyIndexer.FromObject(obj)
	if ok && string(key) == h.key && inRebase() && !h.firing && !h.seen[obj] {
		h.seen[obj] = true
		h.firing = true
		defer func() { h.firing = false }()
		h.fire()
	}
	return ok, key, err
}

// inRebase reports whether the calling goroutine is running Store.rebase.
func inRebase() bool {
	buf := make([]byte, 64<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), ".(*Store).rebase(")
}

// hookIndexer makes h the primary key indexer of table for the rest of the
// test.
func hookIndexer(t *testing.T, table string, h *roundHook) {
	t.Helper()
	old := idIndexers[table]
	h.keyIndexer = old
	idIndexers[table] = h
	t.Cleanup(func() { idIndexers[table] = old })
}

// roundChange is the change made in the middle of round r of a rebase: one
// to the user "trigger", which the next round looks up again, and others of
// every kind to records in the base and the delta.
func roundChange(r int) func(tx *Txn) error {
	return func(tx *Txn) error {
		errs := []error{tx.PutUser(&User{Name: "trigger", PasswordHash: fmt.Sprint(r)})}
		switch r {
		case 0:
		case 1:
			errs = append(errs, tx.DeleteClient("c2"), tx.DeleteConsent(stableSub, stableID(0)),
				tx.PutRevocation(&Revocation{Key: "jti:r1", ExpiresAt: t0}))
		case 2:
			errs = append(errs, tx.PutClient(testClient("c2")), tx.DeleteUser("admin"),
				tx.DeleteRevocation("jti:"+stableID(2)), tx.DeleteRevocation("jti:r1"))
		case 3:
			errs = append(errs, tx.DeleteClient(doomedID(0)), tx.DeleteSigningKey("k2"),
				tx.PutConsent(&Consent{Subject: "alice", ClientID: "c9", GrantedAt: t0}))
		default:
			c := testClient("c2")
			c.Name = fmt.Sprint("round ", r)
			errs = append(errs, tx.DeleteClient(doomedID(1)), tx.PutClient(c),
				tx.DeleteRefreshToken("stable-rt-"+stableID(4)),
				tx.DeleteConsent("alice", "c9"))
		}
		return errors.Join(errs...)
	}
}

// TestRebaseWritesDuringRounds makes a write in the middle of every round
// of a rebase, each changing a record the next round looks up. In the
// rounds before the last one the writer lock must be free, so the write is
// made there and then and caught up with by the next round; the last round
// must hold it until the new base and delta are in place, so that its write
// lands on them. Then the store holds what was acknowledged, as does a
// reopen.
func TestRebaseWritesDuringRounds(t *testing.T) {
	setSettled(t, 0) // take every round
	j := &journal{}
	s, dir := seedLayered(t, Options{}, j)
	old := s.layers().base
	var free, held []int
	var late sync.WaitGroup
	hookIndexer(t, tableUsers, &roundHook{key: "trigger", seen: map[any]bool{},
		fire: func() {
			r := len(free) + len(held) + 1
			name := fmt.Sprint("during round ", r)
			if !s.wmu.TryLock() {
				held = append(held, r)
				late.Go(func() {
					if err := j.update(s, name, roundChange(r)); err != nil {
						t.Errorf("%s: %v", name, err)
					}
				})
				return
			}
			s.wmu.Unlock()
			free = append(free, r)
			j.must(t, s, name, roundChange(r))
		}})

	var err error
	func() {
		s.snapMu.Lock()
		defer s.snapMu.Unlock()
		st, serr := s.snapshot(context.Background())
		if serr != nil || st.tx == nil {
			t.Fatalf("snapshot: %v (written: %v)", serr, st.tx != nil)
		}
		j.must(t, s, "before round 1", roundChange(0))
		err = s.rebase(st)
	}()
	late.Wait()
	if err != nil {
		t.Fatalf("rebase: %v", err)
	}
	if s.layers().base == old {
		t.Fatal("the base was not rebuilt")
	}
	if want := []int{1, 2, 3}; !cmp.Equal(free, want) || !cmp.Equal(held, []int{4}) {
		t.Errorf("rounds with the writer lock free %v and held %v, want %v and [4]",
			free, held, want)
	}
	checkMinimalDelta(t, s.layers())
	want := storeView(t, j.replay(t))
	if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
		t.Fatalf("state after the rebase (-acknowledged +store):\n%s", diff)
	}
	if got := s.User("trigger"); got == nil || got.PasswordHash != "4" {
		t.Errorf("trigger after the rebase: %+v, want the last round's", got)
	}
	s = reopen(t, s, dir, Options{})
	if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
		t.Errorf("state after reopen (-acknowledged +store):\n%s", diff)
	}
}
