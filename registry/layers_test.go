package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The tests of this file check the base and delta layers of the index
// against stores that hold everything in the delta, or against what was
// acknowledged, on the paths TestLayersMatchModel does not take: every table,
// failed fsyncs, NoGroupCommit, Housekeep, Compact, Dump, snapshots taken
// while writers run, and bases built from unusual snapshots.

// Key universes of layerOp: small, so that records keep meeting in the base,
// the delta and both.
var (
	layerClients  = []string{"c0", "c1", "c2", "c3"}
	layerSubjects = []string{"u", "uu", "v"}
	layerGrants   = []string{"g0", "g1", "g2"}
)

// layerOp returns a random change to any table, applied through tx.
// Deleting a missing record is a change that fails with ErrNotFound; the
// caller compares errors between stores. Expiry times fall on both sides of
// t0, the time Housekeep is run at.
func layerOp(r *rand.Rand, step int) (string, func(tx *Txn) error) {
	cid := layerClients[r.IntN(len(layerClients))]
	sub := layerSubjects[r.IntN(len(layerSubjects))]
	grant := layerGrants[r.IntN(len(layerGrants))]
	hash := fmt.Sprint("h", r.IntN(8))
	expires := t0.Add(time.Duration(r.IntN(3)-1) * time.Hour)
	tag := fmt.Sprint("v", step)
	switch r.IntN(14) {
	case 0:
		return "put client " + cid, func(tx *Txn) error {
			c := testClient(cid)
			c.Name = tag
			return tx.PutClient(c)
		}
	case 1:
		return "delete client " + cid, func(tx *Txn) error { return tx.DeleteClient(cid) }
	case 2:
		return "put code " + hash, func(tx *Txn) error {
			return tx.PutAuthCode(&AuthCode{Hash: hash, ClientID: cid, Subject: sub,
				GrantID: grant, Scope: tag, CreatedAt: t0, ExpiresAt: expires})
		}
	case 3:
		return "delete code " + hash, func(tx *Txn) error { return tx.DeleteAuthCode(hash) }
	case 4, 5:
		return "put refresh " + hash, func(tx *Txn) error {
			rt := testRefresh(hash, grant, cid)
			rt.Scope, rt.ExpiresAt = tag, expires
			return tx.PutRefreshToken(rt)
		}
	case 6:
		return "delete refresh " + hash, func(tx *Txn) error {
			return tx.DeleteRefreshToken(hash)
		}
	case 7:
		return "put consent " + sub + "/" + cid, func(tx *Txn) error {
			return tx.PutConsent(&Consent{Subject: sub, ClientID: cid, Scope: tag,
				GrantedAt: t0})
		}
	case 8:
		return "delete consent " + sub + "/" + cid, func(tx *Txn) error {
			return tx.DeleteConsent(sub, cid)
		}
	case 9:
		id := fmt.Sprint("k", r.IntN(3))
		created := t0.Add(time.Duration(r.IntN(3)) * time.Hour)
		return "put key " + id, func(tx *Txn) error {
			return tx.PutSigningKey(&SigningKey{ID: id, Algorithm: tag,
				PrivateKey: []byte(tag), CreatedAt: created})
		}
	case 10:
		id := fmt.Sprint("k", r.IntN(3))
		return "delete key " + id, func(tx *Txn) error { return tx.DeleteSigningKey(id) }
	case 11:
		return "put user " + sub, func(tx *Txn) error {
			return tx.PutUser(&User{Name: sub, PasswordHash: tag, CreatedAt: t0})
		}
	case 12:
		return "delete user " + sub, func(tx *Txn) error { return tx.DeleteUser(sub) }
	default:
		key := "jti:" + hash
		if r.IntN(3) == 0 {
			return "delete revocation " + key, func(tx *Txn) error {
				return tx.DeleteRevocation(key)
			}
		}
		return "put revocation " + key, func(tx *Txn) error {
			return tx.PutRevocation(&Revocation{Key: key, ExpiresAt: expires, CreatedAt: t0})
		}
	}
}

// view is everything the registry answers, through every kind of read:
// whole tables, point lookups, key prefixes and non-unique indexes.
type view struct {
	State    state
	Codes    map[string][]*AuthCode
	ByClient map[string][]*RefreshToken
	ByGrant  map[string][]*RefreshToken
	Consents map[string][]*Consent
	Lookups  []any
}

// storeView reads s through Store methods, and through a Txn the indexes
// that only a Txn offers.
func storeView(t *testing.T, s *Store) view {
	t.Helper()
	v := readView(s)
	err := s.Update(context.Background(), func(tx *Txn) error {
		for _, g := range layerGrants {
			v.ByGrant[g] = tx.RefreshTokensByGrant(g)
		}
		for _, cid := range layerClients {
			if diff := cmp.Diff(v.ByClient[cid], tx.RefreshTokensByClient(cid)); diff != "" {
				t.Errorf("refresh tokens of %s: Txn and Store differ (-store +txn):\n%s",
					cid, diff)
			}
		}
		if diff := cmp.Diff(v.State.Keys, tx.SigningKeys()); diff != "" {
			t.Errorf("signing keys: Txn and Store differ (-store +txn):\n%s", diff)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading through a Txn: %v", err)
	}
	return v
}

// cmpNoByGrant compares views leaving out ByGrant, which only storeView fills.
var cmpNoByGrant = cmp.FilterPath(func(p cmp.Path) bool {
	return strings.Contains(p.GoString(), "ByGrant")
}, cmp.Ignore())

// readView reads s through Store methods only, so it works while writes
// fail.
func readView(s *Store) view {
	v := view{State: stateOf(s), Codes: map[string][]*AuthCode{},
		ByClient: map[string][]*RefreshToken{}, ByGrant: map[string][]*RefreshToken{},
		Consents: map[string][]*Consent{}}
	for _, cid := range layerClients {
		v.Codes[cid] = all[AuthCode](s.layers(), tableCodes, indexClient, cid)
		v.ByClient[cid] = s.RefreshTokensByClient(cid)
		v.Lookups = append(v.Lookups, s.Client(cid))
		for _, sub := range layerSubjects {
			v.Lookups = append(v.Lookups, s.Consent(sub, cid))
		}
	}
	for _, sub := range layerSubjects {
		v.Consents[sub] = s.Consents(sub)
		v.Lookups = append(v.Lookups, s.User(sub))
	}
	for i := range 8 {
		hash := fmt.Sprint("h", i)
		v.Lookups = append(v.Lookups, s.AuthCode(hash), s.RefreshToken(hash),
			s.Revocation("jti:"+hash), s.Revoked("jti:"+hash))
	}
	return v
}

// pair is a store whose state is moved into its base by snapshots and
// reopens, and a reference store that never snapshots nor reopens, so that
// it holds everything in its delta.
type pair struct {
	t        *testing.T
	dir      string
	opts     Options
	s, ref   *Store
	history  []string
	baseSeen bool
}

func newPair(t *testing.T, opts Options) *pair {
	t.Helper()
	dir := t.TempDir()
	p := &pair{t: t, dir: dir, opts: opts, s: openDir(t, dir, opts)}
	p.ref, _ = openTest(t, Options{SnapshotBytes: -1, SnapshotRecords: -1})
	return p
}

// update runs the same function in both stores and checks that they agree
// on its outcome.
func (p *pair) update(name string, fn func(tx *Txn) error) {
	p.t.Helper()
	p.history = append(p.history, name)
	err := p.s.Update(context.Background(), fn)
	rerr := p.ref.Update(context.Background(), fn)
	if fmt.Sprint(err) != fmt.Sprint(rerr) {
		p.fatalf("%s: layered store: %v, reference store: %v", name, err, rerr)
	}
}

func (p *pair) reopen(why string) {
	p.t.Helper()
	p.history = append(p.history, why)
	p.s = reopen(p.t, p.s, p.dir, p.opts)
	p.baseSeen = p.baseSeen || p.s.layers().base.records() > 0
}

func (p *pair) fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf(format+"\nhistory: %s", append(args, strings.Join(p.history, "; "))...)
}

// check compares the two stores.
func (p *pair) check() {
	p.t.Helper()
	if diff := cmp.Diff(storeView(p.t, p.ref), storeView(p.t, p.s)); diff != "" {
		p.fatalf("layered store differs from the reference (-ref +layered):\n%s", diff)
	}
}

// TestLayersMatchDeltaOnly runs random Updates (some failing), Housekeep,
// snapshots, reopens and Compact against a store, and the same Updates and
// Housekeep against one that never leaves its delta, and compares every
// read of every table after each step.
func TestLayersMatchDeltaOnly(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"group commit", Options{}},
		{"no group commit", Options{NoGroupCommit: true}},
		{"automatic snapshots", Options{SnapshotRecords: 7, SegmentSize: 2000}},
	}
	for _, tt := range tests {
		for seed := range uint64(2) {
			t.Run(fmt.Sprint(tt.name, "/seed=", seed), func(t *testing.T) {
				t.Parallel()
				r := rand.New(rand.NewPCG(seed, 2))
				p := newPair(t, tt.opts)
				for step := range 150 {
					p.step(r, step)
					p.check()
				}
				if !p.baseSeen {
					t.Error("no record ever came from a base: the test does not test layering")
				}
			})
		}
	}
}

func (p *pair) step(r *rand.Rand, step int) {
	p.t.Helper()
	switch k := r.IntN(40); {
	case k < 2:
		snapshot(p.t, p.s)
		p.reopen("snapshot and reopen")
	case k == 2:
		p.reopen("reopen")
	case k == 3:
		snapshot(p.t, p.s)
		p.history = append(p.history, "snapshot")
	case k == 4:
		if err := p.s.Close(); err != nil {
			p.fatalf("Close: %v", err)
		}
		if err := Compact(context.Background(), p.dir); err != nil {
			p.fatalf("Compact: %v", err)
		}
		p.reopen("compact and reopen")
	case k < 8:
		sw, err := p.s.Housekeep(context.Background(), t0)
		rsw, rerr := p.ref.Housekeep(context.Background(), t0)
		p.history = append(p.history, "housekeep")
		if err != nil || rerr != nil || sw != rsw {
			p.fatalf("Housekeep: layered %+v, %v; reference %+v, %v", sw, err, rsw, rerr)
		}
	default:
		var names []string
		var fns []func(tx *Txn) error
		for range 1 + r.IntN(4) {
			name, fn := layerOp(r, step)
			names, fns = append(names, name), append(fns, fn)
		}
		abandon := r.IntN(6) == 0
		if abandon {
			names = append(names, "(abandoned)")
		}
		p.update(strings.Join(names, ", "), func(tx *Txn) error {
			for i, fn := range fns {
				if err := fn(tx); err != nil && !errors.Is(err, ErrNotFound) {
					return fmt.Errorf("%s: %w", names[i], err)
				}
			}
			if abandon {
				return errAbandon
			}
			return nil
		})
	}
}

// layeredStore opens a store whose records all come from the base: the
// fixture, plus expired and live records for Housekeep, snapshotted and
// reopened.
func layeredStore(t *testing.T, opts Options) (*Store, string) {
	t.Helper()
	s, dir := openTest(t, opts)
	update(t, s, func(tx *Txn) error {
		errs := []error{testFixture().putAll(tx)}
		for i := range 4 {
			rt := testRefresh(fmt.Sprint("old-rt-", i), "g9", "c3")
			rt.ExpiresAt = t0.Add(-time.Hour)
			errs = append(errs, tx.PutRefreshToken(rt),
				tx.PutRevocation(&Revocation{Key: fmt.Sprint("jti:old-", i),
					ExpiresAt: t0.Add(-time.Hour), CreatedAt: t0.Add(-2 * time.Hour)}))
		}
		return errors.Join(errs...)
	})
	snapshot(t, s)
	s = reopen(t, s, dir, opts)
	if n := s.layers().base.records(); n == 0 {
		t.Fatal("the base holds no record after a snapshot and reopen")
	}
	return s, dir
}

// changeBase changes records of every table that the base holds: deletes,
// replacements, a cascade, and a delete followed by a put of the same key.
func changeBase(tx *Txn) error {
	c2 := tx.Client("c2").Copy()
	c2.Name = "renamed"
	k2 := tx.SigningKeys()[1].Copy()
	k2.RetireAt = t0.Add(48 * time.Hour)
	return errors.Join(
		tx.DeleteClient("c1"),
		tx.PutClient(c2),
		tx.DeleteConsent("alice", "c2"),
		tx.PutConsent(&Consent{Subject: "alice", ClientID: "c2", Scope: "again", GrantedAt: t0}),
		tx.DeleteSigningKey("k1"),
		tx.PutSigningKey(k2),
		tx.DeleteUser("bob"),
		tx.PutUser(&User{Name: "admin", PasswordHash: "new", CreatedAt: t0}),
		tx.DeleteRevocation("jti:abc"),
		tx.DeleteRefreshToken("rt-3"),
		tx.PutRefreshToken(testRefresh("rt-3", "g3", "c3")),
	)
}

// TestLayersFailedWriteKeepsBase checks that Updates changing and deleting
// base records whose log write or fsync fails leave no trace: not in Store
// reads, not in the next Txn, not after a reopen; and that the same changes
// then succeed and survive a snapshot and reopen.
func TestLayersFailedWriteKeepsBase(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		op   string
		err  error
	}{
		{"fsync fails", Options{}, "sync", syscall.EIO},
		{"fsync fails without group commit", Options{NoGroupCommit: true}, "sync", syscall.EIO},
		{"full disk", Options{}, "write", syscall.ENOSPC},
		{"full disk without group commit", Options{NoGroupCommit: true}, "write", syscall.ENOSPC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ffs := newFaultFS()
			tt.opts.FS = ffs
			s, dir := layeredStore(t, tt.opts)
			before := storeView(t, s)

			ffs.set(tt.op, walPrefix, tt.err)
			for range 2 {
				err := s.Update(context.Background(), changeBase)
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("Update during the fault = %v, want ErrUnavailable", err)
				}
				if diff := cmp.Diff(before, readView(s), cmpNoByGrant); diff != "" {
					t.Fatalf("state after a failed Update (-want +got):\n%s", diff)
				}
			}
			ffs.clear()
			if diff := cmp.Diff(before, storeView(t, s)); diff != "" {
				t.Fatalf("state seen once writes work again (-want +got):\n%s", diff)
			}

			update(t, s, changeBase)
			want := storeView(t, s)
			if diff := cmp.Diff(before, want); diff == "" {
				t.Fatal("changeBase changed nothing")
			}
			s = reopen(t, s, dir, tt.opts)
			if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
				t.Errorf("state after reopen (-want +got):\n%s", diff)
			}
			snapshot(t, s)
			s = reopen(t, s, dir, tt.opts)
			if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
				t.Errorf("state after snapshot and reopen (-want +got):\n%s", diff)
			}
		})
	}
}

// inOneBatch runs fns as Updates of one write batch, in order: it holds the
// writer role with an Update of its own until all of them are queued. It
// returns their errors.
func inOneBatch(t *testing.T, s *Store, fns ...func(tx *Txn) error) []error {
	t.Helper()
	release, held := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s.Update(context.Background(), func(*Txn) error {
			close(held)
			<-release
			return nil
		})
	})
	<-held
	errs := make([]error, len(fns))
	for i, fn := range fns {
		wg.Go(func() { errs[i] = s.Update(context.Background(), fn) })
		waitQueued(t, s, i+1)
	}
	close(release)
	wg.Wait()
	return errs
}

// waitQueued waits until n Updates are queued behind the writer.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.qmu.Lock()
		got := len(s.queue)
		s.qmu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Updates queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLayersUndoInBatch checks that a failed Update undoes its changes to
// base records over the tombstones and replacements that earlier Updates of
// its batch left in the delta, and that later Updates of the batch, Store
// reads and a reopen see the state of the Updates that succeeded.
func TestLayersUndoInBatch(t *testing.T) {
	s, dir := layeredStore(t, Options{})
	var seen [][]string
	errs := inOneBatch(t, s,
		func(tx *Txn) error {
			return errors.Join(tx.DeleteRefreshToken("rt-1"), tx.DeleteConsent("alice", "c1"),
				tx.DeleteUser("bob"), tx.DeleteClient("c2"))
		},
		func(tx *Txn) error {
			errs := []error{tx.PutRefreshToken(testRefresh("rt-1", "g1", "c1")),
				tx.PutConsent(&Consent{Subject: "alice", ClientID: "c1", GrantedAt: t0}),
				tx.PutUser(&User{Name: "bob", CreatedAt: t0}),
				tx.PutClient(testClient("c2")),
				tx.DeleteRefreshToken("rt-2"),
				tx.DeleteSigningKey("k1"),
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
			return errAbandon
		},
		func(tx *Txn) error {
			var got []string
			for _, rt := range tx.RefreshTokensByGrant("g1") {
				got = append(got, rt.Hash)
			}
			seen = append(seen, got,
				[]string{fmt.Sprint(tx.RefreshToken("rt-1") == nil, tx.User("bob") == nil,
					tx.Client("c2") == nil, tx.Consent("alice", "c1") == nil,
					len(tx.SigningKeys()))})
			return tx.PutClient(testClient("c4"))
		},
	)
	if diff := cmp.Diff([]error{nil, errAbandon, nil}, errs, cmp.Comparer(func(a, b error) bool {
		return errors.Is(a, b) || errors.Is(b, a)
	})); diff != "" {
		t.Fatalf("errors of the batch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]string{{"rt-2"}, {"true true true true 2"}}, seen); diff != "" {
		t.Errorf("what the Update after the failed one saw (-want +got):\n%s", diff)
	}

	want := storeView(t, s)
	wantClients := []string{"c1", "c3", "c4"}
	if diff := cmp.Diff(wantClients, ids(s.Clients())); diff != "" {
		t.Errorf("clients (-want +got):\n%s", diff)
	}
	if got := s.Consents("alice"); len(got) != 0 {
		t.Errorf("alice's consents = %v, want none (c1's deleted, c2's with c2)", got)
	}
	s = reopen(t, s, dir, Options{})
	if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
		t.Errorf("state after reopen (-want +got):\n%s", diff)
	}
}

// TestLayersRidersOfFailedFsync checks that when a group-commit fsync fails,
// the Updates that read a base record's tombstone or replacement left by an
// earlier Update of the round fail with it and the base shows again.
func TestLayersRidersOfFailedFsync(t *testing.T) {
	ffs := newFaultFS()
	s, dir := layeredStore(t, Options{FS: ffs})
	before := storeView(t, s)
	ffs.set("sync", walPrefix, syscall.EIO)
	errs := inOneBatch(t, s,
		func(tx *Txn) error { return tx.DeleteClient("c1") },
		func(tx *Txn) error {
			if tx.Client("c1") != nil || len(tx.RefreshTokensByClient("c1")) != 0 {
				return errors.New("c1 still visible after its delete in the same batch")
			}
			return tx.PutClient(testClient("c1"))
		},
		func(tx *Txn) error { return tx.DeleteUser("bob") },
	)
	for i, err := range errs {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("Update %d = %v, want ErrUnavailable", i, err)
		}
	}
	if diff := cmp.Diff(before, readView(s), cmpNoByGrant); diff != "" {
		t.Fatalf("state after the failed round (-want +got):\n%s", diff)
	}
	ffs.clear()
	update(t, s, func(tx *Txn) error {
		if tx.Client("c1") == nil || tx.Consent("bob", "c1") == nil || tx.User("bob") == nil ||
			len(tx.RefreshTokensByClient("c1")) != 2 {
			return errors.New("the next Txn does not see the base records of c1")
		}
		return nil
	})
	s = reopen(t, s, dir, Options{})
	if diff := cmp.Diff(before, storeView(t, s)); diff != "" {
		t.Errorf("state after reopen (-want +got):\n%s", diff)
	}
}

// TestLayersHousekeepAcrossRestarts removes expired records from the base,
// then from a base written after that, checking counts and state each time.
func TestLayersHousekeepAcrossRestarts(t *testing.T) {
	s, dir := layeredStore(t, Options{})
	expired := func(i int) {
		update(t, s, func(tx *Txn) error {
			rt := testRefresh(fmt.Sprint("delta-rt-", i), "g9", "c3")
			rt.ExpiresAt = t0.Add(-time.Minute)
			return tx.PutRefreshToken(rt)
		})
	}
	now := t0
	steps := []struct {
		name   string
		before func()
		want   Swept
	}{
		{"expired in the base", func() { expired(0) }, Swept{RefreshTokens: 5, Revocations: 4}},
		{"nothing left", func() {}, Swept{}},
		{"after snapshot and reopen", func() {
			snapshot(t, s)
			s = reopen(t, s, dir, Options{})
		}, Swept{}},
		{"expired after reopen", func() {
			expired(1)
			snapshot(t, s)
			s = reopen(t, s, dir, Options{})
			expired(2)
		}, Swept{RefreshTokens: 2}},
		{"code expired in the base", func() { now = t0.Add(2 * time.Minute) }, Swept{Codes: 1}},
		{"after reopen", func() { s = reopen(t, s, dir, Options{}) }, Swept{}},
	}
	for _, st := range steps {
		st.before()
		sw, err := s.Housekeep(context.Background(), now)
		if err != nil {
			t.Fatalf("%s: Housekeep: %v", st.name, err)
		}
		if diff := cmp.Diff(st.want, sw); diff != "" {
			t.Errorf("%s: swept (-want +got):\n%s", st.name, diff)
		}
		for _, rt := range all[RefreshToken](s.layers(), tableRefreshTokens, indexID) {
			if rt.ExpiresAt.Before(now) {
				t.Errorf("%s: expired refresh token %s still there", st.name, rt.Hash)
			}
		}
	}
	if s.AuthCode("code-1") != nil || len(s.RefreshTokensByClient("c1")) != 2 {
		t.Errorf("after housekeeping: code %v, refresh tokens of c1 %v; want none and two",
			s.AuthCode("code-1"), s.RefreshTokensByClient("c1"))
	}
}

// TestLayersSnapshotDuringWrites takes snapshots while writers change and
// delete base records, then checks that a reopen shows exactly what was
// acknowledged.
func TestLayersSnapshotDuringWrites(t *testing.T) {
	s, dir := layeredStore(t, Options{SegmentSize: 4000})
	const writers, rounds = 4, 40
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	snapErr := make(chan error, 1)
	go func() {
		defer close(snapErr)
		for ctx.Err() == nil {
			if err := s.Snapshot(ctx); err != nil && ctx.Err() == nil {
				snapErr <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				hash := fmt.Sprint("w", w, "-", i%5)
				err := s.Update(context.Background(), func(tx *Txn) error {
					if i == 0 && w < 3 {
						// Each writer deletes one base record of its own.
						return tx.DeleteRefreshToken(fmt.Sprint("rt-", w+1))
					}
					if i%3 == 2 {
						return tx.DeleteRefreshToken(hash)
					}
					rt := testRefresh(hash, fmt.Sprint("g", w), "c3")
					rt.Scope = fmt.Sprint(i)
					return tx.PutRefreshToken(rt)
				})
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Errorf("writer %d round %d: %v", w, i, err)
				}
			}
		})
	}
	wg.Wait()
	cancel()
	if err := <-snapErr; err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	want := storeView(t, s)
	for w := range 3 {
		if s.RefreshToken(fmt.Sprint("rt-", w+1)) != nil {
			t.Errorf("base refresh token rt-%d was deleted but is still there", w+1)
		}
	}
	s = reopen(t, s, dir, Options{})
	if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
		t.Errorf("state after reopen (-want +got):\n%s", diff)
	}
	snapshot(t, s)
	s = reopen(t, s, dir, Options{})
	if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
		t.Errorf("state after a second snapshot and reopen (-want +got):\n%s", diff)
	}
}

// TestLayersDumpAndCompact checks that Dump (read-only) and Compact see a
// data directory's base with the tombstones and replacements over it, and
// that after Compact the whole state is in the base.
func TestLayersDumpAndCompact(t *testing.T) {
	s, dir := layeredStore(t, Options{})
	update(t, s, changeBase)
	want := storeView(t, s)
	wantDump, err := json.Marshal(dumpState(s.layers(), s.durable.seq))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	if err := Dump(dir, &buf); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	var gotDump, wantDec any
	if err := json.Unmarshal(buf.Bytes(), &gotDump); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(wantDump, &wantDec); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantDec, gotDump); diff != "" {
		t.Errorf("Dump (-want +got):\n%s", diff)
	}

	if err := Compact(context.Background(), dir); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	rep, err := Verify(dir)
	if err != nil || !rep.OK() {
		t.Errorf("Verify after Compact = %+v, %v", rep, err)
	}
	s = openDir(t, dir, Options{})
	if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
		t.Errorf("state after Compact (-want +got):\n%s", diff)
	}
	if s.durable.seq != s.lastSnap {
		t.Errorf("after Compact the log is replayed from seq %d to %d", s.lastSnap, s.durable.seq)
	}
	st := want.State
	if got, n := s.layers().base.records(), len(st.Clients)+len(st.Codes)+len(st.Refresh)+
		len(st.Consents)+len(st.Keys)+len(st.Users)+len(st.Revs); got != n {
		t.Errorf("after Compact the base holds %d records, want all %d", got, n)
	}
}

// snapRec is one record of a snapshot written by writeRawSnapshot.
type snapRec struct {
	table string
	obj   any
}

// writeRawSnapshot writes recs, in the order given, as a snapshot that
// verifies.
func writeRawSnapshot(t *testing.T, path string, recs []snapRec) {
	t.Helper()
	var buf bytes.Buffer
	sw := newSnapWriter(&buf, snapInfo{})
	for _, r := range recs {
		if err := sw.add(codecByTable[r.table], r.obj); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.finish(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestBaseFromUnusualSnapshots builds bases from snapshots that are empty,
// lack tables, or hold a table's records out of key order or more than once,
// and compares every read with an index into which the same records were
// inserted in turn.
func TestBaseFromUnusualSnapshots(t *testing.T) {
	rt := func(hash, grant, client, scope string) *RefreshToken {
		r := testRefresh(hash, grant, client)
		r.Scope = scope
		return r
	}
	consent := func(sub, cid, scope string) *Consent {
		return &Consent{Subject: sub, ClientID: cid, Scope: scope, GrantedAt: t0}
	}
	tests := []struct {
		name string
		recs []snapRec
	}{
		{"empty", nil},
		{"one table", []snapRec{{tableUsers, &User{Name: "u", CreatedAt: t0}}}},
		{"refresh tokens out of order", []snapRec{
			{tableRefreshTokens, rt("h2", "g1", "c1", "a")},
			{tableRefreshTokens, rt("h1", "g1", "c2", "b")},
			{tableRefreshTokens, rt("h3", "g2", "c1", "c")},
		}},
		{"a refresh token repeated with another client and grant", []snapRec{
			{tableRefreshTokens, rt("h1", "g1", "c1", "first")},
			{tableRefreshTokens, rt("h2", "g1", "c1", "x")},
			{tableRefreshTokens, rt("h1", "g2", "c2", "second")},
			{tableRefreshTokens, rt("h0", "g1", "c1", "y")},
			{tableRefreshTokens, rt("h1", "g3", "c3", "third")},
		}},
		{"consents out of order and repeated", []snapRec{
			{tableConsents, consent("uu", "c1", "1")},
			{tableConsents, consent("u", "c2", "2")},
			{tableConsents, consent("u", "c1", "3")},
			{tableConsents, consent("uu", "c1", "4")},
			{tableConsents, consent("v", "c0", "5")},
		}},
		{"codes of one client repeated", []snapRec{
			{tableClients, testClient("c1")},
			{tableCodes, &AuthCode{Hash: "x", ClientID: "c1", ExpiresAt: t0}},
			{tableCodes, &AuthCode{Hash: "x", ClientID: "c2", ExpiresAt: t0}},
			{tableCodes, &AuthCode{Hash: "a", ClientID: "c2", ExpiresAt: t0}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), snapshotName(0))
			writeRawSnapshot(t, path, tt.recs)
			b, _, err := readSnapshot(OSFS{}, path)
			if err != nil {
				t.Fatalf("readSnapshot: %v", err)
			}
			db := newDB()
			tx := db.Txn(true)
			for _, r := range tt.recs {
				if err := tx.Insert(r.table, r.obj); err != nil {
					t.Fatal(err)
				}
			}
			tx.Commit()
			want := layersView(layers{tx: db.Txn(false)})
			got := layersView(layers{base: b, tx: newDB().Txn(false)})
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("base (-inserted in turn +base):\n%s", diff)
			}
			st := want.State
			if got, n := b.records(), len(st.Clients)+len(st.Codes)+len(st.Refresh)+
				len(st.Consents)+len(st.Keys)+len(st.Users)+len(st.Revs); got != n {
				t.Errorf("base holds %d records, want %d", got, n)
			}
		})
	}
}

// layersView reads st as storeView reads a Store, without a Txn.
func layersView(st layers) view {
	v := view{State: dbState(st), Codes: map[string][]*AuthCode{},
		ByClient: map[string][]*RefreshToken{},
		ByGrant:  map[string][]*RefreshToken{}, Consents: map[string][]*Consent{}}
	for _, cid := range layerClients {
		v.Codes[cid] = all[AuthCode](st, tableCodes, indexClient, cid)
		v.ByClient[cid] = all[RefreshToken](st, tableRefreshTokens, indexClient, cid)
		v.Lookups = append(v.Lookups, first[Client](st, tableClients, cid))
		for _, sub := range layerSubjects {
			v.Lookups = append(v.Lookups, lookup[Consent](st, tableConsents, sub, cid))
		}
	}
	for _, g := range append(layerGrants, "g3") {
		v.ByGrant[g] = all[RefreshToken](st, tableRefreshTokens, indexGrantID, g)
	}
	for _, sub := range layerSubjects {
		v.Consents[sub] = all[Consent](st, tableConsents, indexID+"_prefix", sub)
	}
	for _, h := range []string{"h0", "h1", "h2", "h3", "x", "a"} {
		v.Lookups = append(v.Lookups, first[AuthCode](st, tableCodes, h),
			first[RefreshToken](st, tableRefreshTokens, h))
	}
	return v
}

// TestLayersOlderSnapshot checks that when the newest snapshot is damaged,
// the base comes from the older one and the log replayed over it, deleting
// and replacing base records, gives the state that was acknowledged.
func TestLayersOlderSnapshot(t *testing.T) {
	logs := &logRecorder{}
	s, dir := layeredStore(t, Options{})
	update(t, s, changeBase)
	update(t, s, func(tx *Txn) error {
		return errors.Join(tx.DeleteClient("c3"), tx.PutClient(testClient("c1")))
	})
	snapshot(t, s)
	want := storeView(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	l := listing(t, dir)
	if len(l.snapshots) != 2 {
		t.Fatalf("snapshots %v, want two", l.snapshots)
	}
	flipByte(t, filepath.Join(dir, snapshotName(l.snapshots[1])), 40)

	s = openDir(t, dir, Options{Logger: slog.New(logs)})
	if s.lastSnap != l.snapshots[0] || s.durable.seq != l.snapshots[1] {
		t.Errorf("loaded snapshot %d and log to %d, want %d and %d",
			s.lastSnap, s.durable.seq, l.snapshots[0], l.snapshots[1])
	}
	if len(logs.matching("WARN", "older snapshot")) != 1 {
		t.Errorf("want a warning about the older snapshot, got %q", logs.recs)
	}
	if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
		t.Errorf("state from the older snapshot and the log (-want +got):\n%s", diff)
	}
}

// TestLayersRepair checks that Repair, cutting the log before a damaged
// record, keeps the deletes and replacements of base records made by the
// records before it, and drops those of the damaged one.
func TestLayersRepair(t *testing.T) {
	s, dir := layeredStore(t, Options{})
	update(t, s, changeBase)
	want := storeView(t, s)
	update(t, s, func(tx *Txn) error {
		return errors.Join(tx.DeleteClient("c3"), tx.DeleteSigningKey("k2"),
			tx.PutUser(&User{Name: "bob", CreatedAt: t0}))
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	l := listing(t, dir)
	seg := filepath.Join(dir, segmentName(l.segments[len(l.segments)-1]))
	offs := recordOffsets(t, mustRead(t, seg))
	if len(offs) != 2 {
		t.Fatalf("the last segment holds %d records, want 2", len(offs))
	}
	flipByte(t, seg, offs[1]+recHeaderSize+1)

	_, err := Open(context.Background(), dir, Options{Logger: testLogger(t)})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open without Repair = %v, want ErrCorrupt", err)
	}
	s = openDir(t, dir, Options{Repair: true})
	if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
		t.Errorf("state after Repair (-want +got):\n%s", diff)
	}
	s = reopen(t, s, dir, Options{})
	if diff := cmp.Diff(want, storeView(t, s)); diff != "" {
		t.Errorf("state after Repair and reopen (-want +got):\n%s", diff)
	}
}
