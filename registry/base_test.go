package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-memdb"
)

// model is what the registry should hold, as plain maps, for
// TestLayersMatchModel.
type model struct {
	clients  map[string]*Client
	refresh  map[string]*RefreshToken
	consents map[[2]string]*Consent
	revs     map[string]*Revocation
}

func newModel() *model {
	return &model{clients: map[string]*Client{}, refresh: map[string]*RefreshToken{},
		consents: map[[2]string]*Consent{}, revs: map[string]*Revocation{}}
}

func (m *model) clone() *model {
	return &model{clients: maps.Clone(m.clients), refresh: maps.Clone(m.refresh),
		consents: maps.Clone(m.consents), revs: maps.Clone(m.revs)}
}

// op is one change applied both to a Txn and to the model.
type op struct {
	name  string
	apply func(tx *Txn, m *model) error
}

// randomOp returns a change to a small universe of keys, so that puts,
// replacements and deletes of the same records (in the base, the delta or
// both) keep meeting.
func randomOp(r *rand.Rand, version int) op {
	cid := fmt.Sprint("c", r.IntN(6))
	hash := fmt.Sprint("r", r.IntN(12))
	grant := fmt.Sprint("g", r.IntN(4))
	sub := fmt.Sprint("u", r.IntN(3))
	rev := fmt.Sprint("jti:", r.IntN(6))
	tag := fmt.Sprint("v", version)
	switch r.IntN(8) {
	case 0, 1:
		return op{"put client " + cid, func(tx *Txn, m *model) error {
			c := testClient(cid)
			c.Name = tag
			m.clients[cid] = c
			return tx.PutClient(c)
		}}
	case 2:
		return op{"delete client " + cid, func(tx *Txn, m *model) error {
			err := tx.DeleteClient(cid)
			if _, ok := m.clients[cid]; !ok {
				return wantNotFound(err)
			}
			delete(m.clients, cid)
			for h, rt := range m.refresh {
				if rt.ClientID == cid {
					delete(m.refresh, h)
				}
			}
			for k := range m.consents {
				if k[1] == cid {
					delete(m.consents, k)
				}
			}
			return err
		}}
	case 3:
		return op{"put refresh " + hash, func(tx *Txn, m *model) error {
			rt := testRefresh(hash, grant, cid)
			rt.Scope = tag
			m.refresh[hash] = rt
			return tx.PutRefreshToken(rt)
		}}
	case 4:
		return op{"delete refresh " + hash, func(tx *Txn, m *model) error {
			err := tx.DeleteRefreshToken(hash)
			if _, ok := m.refresh[hash]; !ok {
				return wantNotFound(err)
			}
			delete(m.refresh, hash)
			return err
		}}
	case 5:
		return op{"put consent " + sub + "/" + cid, func(tx *Txn, m *model) error {
			c := &Consent{Subject: sub, ClientID: cid, Scope: tag, GrantedAt: t0}
			m.consents[[2]string{sub, cid}] = c
			return tx.PutConsent(c)
		}}
	case 6:
		return op{"delete consent " + sub + "/" + cid, func(tx *Txn, m *model) error {
			err := tx.DeleteConsent(sub, cid)
			if _, ok := m.consents[[2]string{sub, cid}]; !ok {
				return wantNotFound(err)
			}
			delete(m.consents, [2]string{sub, cid})
			return err
		}}
	default:
		if r.IntN(2) == 0 {
			return op{"delete revocation " + rev, func(tx *Txn, m *model) error {
				err := tx.DeleteRevocation(rev)
				if _, ok := m.revs[rev]; !ok {
					return wantNotFound(err)
				}
				delete(m.revs, rev)
				return err
			}}
		}
		return op{"put revocation " + rev, func(tx *Txn, m *model) error {
			rv := &Revocation{Key: rev, ExpiresAt: t0.AddDate(1, 0, 0), CreatedAt: t0}
			m.revs[rev] = rv
			return tx.PutRevocation(rv)
		}}
	}
}

// wantNotFound turns the expected ErrNotFound of deleting what is not there
// into success, and anything else into a failure.
func wantNotFound(err error) error {
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return fmt.Errorf("deleting a missing record: got %v, want ErrNotFound", err)
}

var errAbandon = errors.New("abandoned on purpose")

// TestLayersMatchModel runs random changes against a store whose state is
// split between a base loaded from a snapshot and the memdb delta over it,
// and checks every way of reading it against a model after each step: point
// lookups, whole tables, key prefixes and non-unique indexes, through Store
// reads and inside a Txn, across snapshots and restarts (which move the
// delta into the base), and across failed Updates (whose changes are
// undone) and snapshots without restarts (which rebuild the base in place).
func TestLayersMatchModel(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 1))
			dir := t.TempDir()
			s := openDir(t, dir, Options{})
			m := newModel()
			var history []string
			for step := range 400 {
				switch k := r.IntN(20); {
				case k == 0:
					if err := s.Snapshot(context.Background()); err != nil {
						t.Fatal(err)
					}
					s = reopen(t, s, dir, Options{})
					history = append(history, "snapshot and reopen")
				case k == 1:
					s = reopen(t, s, dir, Options{})
					history = append(history, "reopen")
				case k == 2:
					if err := s.Snapshot(context.Background()); err != nil {
						t.Fatal(err)
					}
					history = append(history, "snapshot")
				default:
					n := 1 + r.IntN(4)
					ops := make([]op, n)
					for i := range ops {
						ops[i] = randomOp(r, step)
					}
					fail := r.IntN(5) == 0
					next := m.clone()
					err := s.Update(context.Background(), func(tx *Txn) error {
						next = m.clone()
						for _, o := range ops {
							if err := o.apply(tx, next); err != nil {
								return fmt.Errorf("%s: %w", o.name, err)
							}
							checkTxn(t, tx, next)
						}
						if fail {
							return errAbandon
						}
						return nil
					})
					for _, o := range ops {
						history = append(history, o.name)
					}
					switch {
					case fail && errors.Is(err, errAbandon):
						history = append(history, "(abandoned)")
					case err != nil:
						t.Fatalf("step %d: %v\nhistory: %s", step, err,
							strings.Join(history, "; "))
					default:
						m = next
					}
				}
				if t.Failed() {
					t.Fatalf("step %d differs\nhistory: %s", step, strings.Join(history, "; "))
				}
				checkStore(t, s, m)
				if t.Failed() {
					t.Fatalf("after step %d\nhistory: %s", step, strings.Join(history, "; "))
				}
			}
			if s.layers().base.records() == 0 {
				t.Error("no record ever came from a base: the test does not test layering")
			}
		})
	}
}

// checkTxn compares what a Txn reads with the model.
func checkTxn(t *testing.T, tx *Txn, m *model) {
	t.Helper()
	checkReads(t, "txn", tx.layers(), m, tx.Client, tx.RefreshTokensByClient,
		func(sub, cid string) *Consent { return tx.Consent(sub, cid) })
	for g := range 4 {
		grant := fmt.Sprint("g", g)
		var want []*RefreshToken
		for _, h := range slices.Sorted(maps.Keys(m.refresh)) {
			if m.refresh[h].GrantID == grant {
				want = append(want, m.refresh[h])
			}
		}
		if diff := cmp.Diff(want, tx.RefreshTokensByGrant(grant)); diff != "" {
			t.Errorf("txn: refresh tokens of %s (-want +got):\n%s", grant, diff)
		}
	}
}

// checkStore compares what Store reads return with the model.
func checkStore(t *testing.T, s *Store, m *model) {
	t.Helper()
	checkReads(t, "store", s.layers(), m, s.Client, s.RefreshTokensByClient, s.Consent)
	if diff := cmp.Diff(sortedValues(m.clients), s.Clients()); diff != "" {
		t.Errorf("store: Clients (-want +got):\n%s", diff)
	}
	for u := range 3 {
		sub := fmt.Sprint("u", u)
		var want []*Consent
		for _, k := range slices.SortedFunc(maps.Keys(m.consents), func(a, b [2]string) int {
			return strings.Compare(a[1], b[1])
		}) {
			if k[0] == sub {
				want = append(want, m.consents[k])
			}
		}
		if diff := cmp.Diff(want, s.Consents(sub)); diff != "" {
			t.Errorf("store: consents of %s (-want +got):\n%s", sub, diff)
		}
	}
	for i := range 6 {
		key := fmt.Sprint("jti:", i)
		if diff := cmp.Diff(m.revs[key], s.Revocation(key)); diff != "" {
			t.Errorf("store: revocation %s (-want +got):\n%s", key, diff)
		}
		if got, want := s.Revoked(key), m.revs[key] != nil; got != want {
			t.Errorf("store: Revoked(%s) = %v, want %v", key, got, want)
		}
	}
}

func checkReads(t *testing.T, who string, st layers, m *model, client func(string) *Client,
	byClient func(string) []*RefreshToken, consent func(string, string) *Consent) {
	t.Helper()
	for i := range 6 {
		cid := fmt.Sprint("c", i)
		if diff := cmp.Diff(m.clients[cid], client(cid)); diff != "" {
			t.Errorf("%s: client %s (-want +got):\n%s", who, cid, diff)
		}
		var want []*RefreshToken
		for _, h := range slices.Sorted(maps.Keys(m.refresh)) {
			if m.refresh[h].ClientID == cid {
				want = append(want, m.refresh[h])
			}
		}
		if diff := cmp.Diff(want, byClient(cid)); diff != "" {
			t.Errorf("%s: refresh tokens of %s (-want +got):\n%s", who, cid, diff)
		}
		for u := range 3 {
			sub := fmt.Sprint("u", u)
			if diff := cmp.Diff(m.consents[[2]string{sub, cid}], consent(sub, cid)); diff != "" {
				t.Errorf("%s: consent %s/%s (-want +got):\n%s", who, sub, cid, diff)
			}
		}
	}
	if diff := cmp.Diff(sortedValues(m.refresh),
		all[RefreshToken](st, tableRefreshTokens, indexID)); diff != "" {
		t.Errorf("%s: refresh tokens (-want +got):\n%s", who, diff)
	}
	var wantRevs []*Revocation
	st.scan(tableRevocations, func(o any) bool {
		wantRevs = append(wantRevs, o.(*Revocation))
		return true
	})
	if diff := cmp.Diff(sortedValues(m.revs), wantRevs); diff != "" {
		t.Errorf("%s: revocations scanned (-want +got):\n%s", who, diff)
	}
}

func sortedValues[T any](m map[string]*T) []*T {
	var out []*T
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

// TestBaseOrdersRecords checks that a base built from records out of key
// order, or repeating a key, reads as inserting them in turn would have.
func TestBaseOrdersRecords(t *testing.T) {
	bb := newBaseBuilder()
	for _, id := range []string{"b", "a", "c", "a"} {
		c := testClient(id)
		c.Name = fmt.Sprint(len(bb.b.tables[tableClients].objsOrNil()))
		if err := bb.add(tableClients, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := bb.add(tableClients, &Client{}); err == nil {
		t.Error("a client without an id was added to the base")
	}
	b := bb.finish()
	st := layers{base: b, tx: newDB().Txn(false)}
	var got []string
	for _, c := range all[Client](st, tableClients, indexID) {
		got = append(got, c.ID+"="+c.Name)
	}
	if want := []string{"a=3", "b=0", "c=2"}; !slices.Equal(got, want) {
		t.Errorf("base clients = %v, want %v", got, want)
	}
}

func (t *baseTable) objsOrNil() []any {
	if t == nil {
		return nil
	}
	return t.objs
}

// TestBaseRefusesTableTwice checks that a snapshot holding a table's records
// in two runs, which this program never writes, is refused as corrupt rather
// than built twice at once.
func TestBaseRefusesTableTwice(t *testing.T) {
	var recs []snapRec
	for i := range 300 {
		recs = append(recs, snapRec{tableClients, testClient(fmt.Sprintf("a%05d", 299-i))})
	}
	recs = append(recs, snapRec{tableUsers, &User{Name: "u", CreatedAt: t0}})
	for i := range 300 {
		recs = append(recs, snapRec{tableClients, testClient(fmt.Sprintf("b%05d", i))})
	}
	path := filepath.Join(t.TempDir(), snapshotName(0))
	writeRawSnapshot(t, path, recs)
	_, _, err := readSnapshot(OSFS{}, path)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, errTableTwice) {
		t.Errorf("reading a snapshot with clients in two runs: %v, want ErrCorrupt", err)
	}
	rep, err := Verify(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0].Error, errTableTwice.Error()) {
		t.Errorf("Verify reports %+v, want the table in two places", rep.Problems)
	}
}

// TestDeleteEmptyKey checks that deleting with an empty key finds nothing,
// whether or not the store has a base.
func TestDeleteEmptyKey(t *testing.T) {
	s, dir := openTest(t, Options{})
	update(t, s, testFixture().putAll)
	for _, withBase := range []bool{false, true} {
		if withBase {
			if err := s.Snapshot(context.Background()); err != nil {
				t.Fatal(err)
			}
			s = reopen(t, s, dir, Options{})
		}
		deletes := []struct {
			name string
			del  func(tx *Txn) error
		}{
			{"client", func(tx *Txn) error { return tx.DeleteClient("") }},
			{"code", func(tx *Txn) error { return tx.DeleteAuthCode("") }},
			{"refresh", func(tx *Txn) error { return tx.DeleteRefreshToken("") }},
			{"consent", func(tx *Txn) error { return tx.DeleteConsent("alice", "") }},
			{"key", func(tx *Txn) error { return tx.DeleteSigningKey("") }},
			{"user", func(tx *Txn) error { return tx.DeleteUser("") }},
			{"revocation", func(tx *Txn) error { return tx.DeleteRevocation("") }},
		}
		for _, d := range deletes {
			name, del := d.name, d.del
			t.Run(fmt.Sprintf("%s/base=%v", name, withBase), func(t *testing.T) {
				if err := s.Update(context.Background(), del); !errors.Is(err, ErrNotFound) {
					t.Errorf("deleting a %s with an empty key: %v, want ErrNotFound", name, err)
				}
			})
		}
	}
}

// TestReplayRefusesEmptyConsentKey checks that a log record deleting a
// consent with an empty part of its key is reported by Verify and refused
// by Open as corrupt.
func TestReplayRefusesEmptyConsentKey(t *testing.T) {
	s, dir := openTest(t, Options{})
	update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("a")) })
	update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("b")) })
	s.Close()
	reframe(t, filepath.Join(dir, segmentName(1)), 1, func(_, _ *uint8, payload *[]byte) {
		p, err := encodeBatch(memdb.Changes{{Table: tableConsents,
			Before: &Consent{Subject: "alice"}}})
		if err != nil {
			t.Fatal(err)
		}
		*payload = p
	})
	if rep, err := Verify(dir); err != nil || rep.OK() {
		t.Errorf("Verify = %+v, %v; want a problem reported", rep, err)
	}
	s, err := Open(context.Background(), dir, Options{Logger: testLogger(t)})
	if !errors.Is(err, ErrCorrupt) {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open = %v, want ErrCorrupt", err)
	}
}

// deltaSize counts the entries, records and tombstones, of a state's delta.
func deltaSize(st layers) int {
	n := 0
	for _, c := range snapTables {
		it, err := st.tx.Get(c.table, indexID)
		if err != nil {
			panic(err)
		}
		for e := it.Next(); e != nil; e = it.Next() {
			n++
		}
	}
	return n
}

// TestSnapshotRebuildsBase checks that after a snapshot the base holds the
// state written and the delta only what changed after it: records replaced
// or deleted since the store opened are no longer held.
func TestSnapshotRebuildsBase(t *testing.T) {
	s, dir := openTest(t, Options{})
	update(t, s, testFixture().putAll)
	if err := s.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, dir, Options{})
	first := s.layers().base
	// Replace every client, delete a refresh token and a consent.
	update(t, s, func(tx *Txn) error {
		for _, c := range s.Clients() {
			c = c.Copy()
			c.Name += " (renamed)"
			if err := tx.PutClient(c); err != nil {
				return err
			}
		}
		return errorsJoin(tx.DeleteRefreshToken(testFixture().refresh[0].Hash),
			tx.DeleteConsent(testFixture().consents[0].Subject,
				testFixture().consents[0].ClientID))
	})
	want := stateOf(s)
	if n := deltaSize(s.layers()); n == 0 {
		t.Fatal("the changes are not in the delta")
	}
	if err := s.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := s.layers()
	if st.base == first {
		t.Fatal("the base was not rebuilt")
	}
	if n := deltaSize(st); n != 0 {
		t.Errorf("the delta holds %d entries after a snapshot with no write since, want 0", n)
	}
	if diff := cmp.Diff(want, stateOf(s)); diff != "" {
		t.Errorf("state after the rebuild (-want +got):\n%s", diff)
	}
	if got, want := st.base.records(), len(want.Clients)+len(want.Codes)+
		len(want.Refresh)+len(want.Consents)+len(want.Keys)+len(want.Users)+
		len(want.Revs); got != want {
		t.Errorf("the base holds %d records, want %d", got, want)
	}
	// Writes go on over the new base, and survive a restart.
	update(t, s, func(tx *Txn) error { return tx.DeleteClient(want.Clients[0].ID) })
	want = stateOf(s)
	s = reopen(t, s, dir, Options{})
	if diff := cmp.Diff(want, stateOf(s)); diff != "" {
		t.Errorf("state after a restart (-want +got):\n%s", diff)
	}
}

// TestRebaseDuringWrites checks that a base rebuilt while writers change the
// records, in every catch-up round, reads as the writes acknowledged, and
// that those writes survive a restart.
func TestRebaseDuringWrites(t *testing.T) {
	old := rebaseSettled
	rebaseSettled = 0 // take every round
	t.Cleanup(func() { rebaseSettled = old })
	s, dir := openTest(t, Options{})
	update(t, s, func(tx *Txn) error {
		for i := range 2000 {
			if err := tx.PutClient(testClient(fmt.Sprint("c", i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err := s.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, dir, Options{})

	// model is what the writes acknowledged make of the clients. Update
	// functions run one at a time, in commit order, and none fails here.
	var mu sync.Mutex
	model := map[string]*Client{}
	for _, c := range s.Clients() {
		model[c.ID] = c
	}
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprint("c", r.IntN(2500))
				err := s.Update(context.Background(), func(tx *Txn) error {
					mu.Lock()
					defer mu.Unlock()
					if r.IntN(3) == 0 {
						if tx.Client(id) == nil {
							return nil
						}
						delete(model, id)
						return tx.DeleteClient(id)
					}
					c := testClient(id)
					c.Name = fmt.Sprint("w", w, "-", i)
					model[id] = c
					return tx.PutClient(c)
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 20 {
		update(t, s, func(tx *Txn) error {
			return tx.PutRevocation(&Revocation{Key: "jti:tick", ExpiresAt: t0.AddDate(1, 0, 0)})
		})
		if err := s.Snapshot(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	writers.Wait()
	want := sortedValues(model)
	if diff := cmp.Diff(want, s.Clients()); diff != "" {
		t.Errorf("clients after rebuilding the base during writes (-want +got):\n%s", diff)
	}
	s = reopen(t, s, dir, Options{})
	if diff := cmp.Diff(want, s.Clients()); diff != "" {
		t.Errorf("clients after a restart (-want +got):\n%s", diff)
	}
}

// TestSnapshotAfterClose checks that a closed store writes no snapshot: its
// directory lock is released, and another process may own the files.
func TestSnapshotAfterClose(t *testing.T) {
	s, dir := openTest(t, Options{})
	update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("a")) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshot(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Snapshot after Close = %v, want ErrClosed", err)
	}
	l, err := listDir(OSFS{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.snapshots) != 0 {
		t.Errorf("snapshots %v written after Close", l.snapshots)
	}
}
