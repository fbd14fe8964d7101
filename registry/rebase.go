package registry

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

// rebaseRounds bounds the rounds of a rebase spent catching up without the
// writer lock before it takes the lock for the last one, which it takes
// early once fewer than rebaseSettled keys changed in the round before.
// rebaseSettled is a variable for tests.
const rebaseRounds = 4

var rebaseSettled = 1024

// rebase makes w.next, the base built from the state w a snapshot was just
// written from, the base, and leaves in the delta only what changed since:
// records replaced or deleted before the snapshot stop being held in memory.
// snapshot started tracking the keys changed after w; a key not changed
// since has the same record in the new base as in the current state.
//
// In rounds, the tracked keys are taken (holding the writer lock only to
// swap the set) and looked up in the newest state to build the new delta;
// the last round, holding the writer lock, brings the keys changed meanwhile
// up to date and puts the new base and delta in place. Readers never wait. It
// gives up, keeping the old base (which stays correct), when the store is
// closing or a write failed meanwhile.
func (s *Store) rebase(w written) (err error) {
	defer func() {
		if err != nil {
			s.stopTracking()
		}
	}()
	start := time.Now()
	st, nb := w.layers, w.next
	nd := newDelta(nb)
	defer nd.tx.Abort()
	keys := 0
	for round := 1; ; round++ {
		s.wmu.Lock()
		pause := time.Now()
		head, err := s.settledHeadLocked(st.base)
		if err != nil {
			s.wmu.Unlock()
			return err
		}
		tracked := s.tracked
		last := len(tracked) < rebaseSettled || round == rebaseRounds
		if !last {
			s.tracked = trackedChanges{}
			s.wmu.Unlock()
		}
		keys += len(tracked)
		now := layers{base: st.base, tx: head.Txn(false)}
		for _, ch := range tracked {
			if err := nd.set(ch.table, idKey(ch.table, ch.obj),
				now.current(ch.table, ch.obj)); err != nil {
				if last {
					s.wmu.Unlock()
				}
				return err
			}
		}
		if !last {
			continue
		}
		nd.tx.Commit()
		s.tracked = nil
		s.smu.Lock()
		s.base, s.head = nb, nd.db
		s.durableDB = nd.db.Snapshot()
		s.appendedDB = s.durableDB
		s.view.Store(&layers{base: nb, tx: s.durableDB.Txn(false)})
		s.smu.Unlock()
		s.wmu.Unlock()
		s.log.Info("base rebuilt from the snapshot", "records", nb.records(),
			"delta", len(nd.entries), "changed_meanwhile", keys, "rounds", round,
			"duration", time.Since(start).Round(time.Millisecond),
			"writers_paused", time.Since(pause).Round(time.Microsecond))
		return nil
	}
}

// trackedChange is a record changed after the state a rebase builds on: the
// record before or after the change, which gives its table and key.
type trackedChange struct {
	table string
	obj   any
}

// trackedChanges holds the changes tracked for a rebase, by table and key.
type trackedChanges map[string]trackedChange

// track records the records changed by a batch for a rebase under way. It
// holds wmu.
func (s *Store) track(changes []memdb.Change) {
	if s.tracked == nil {
		return
	}
	for _, ch := range changes {
		obj := ch.After
		if obj == nil {
			obj = ch.Before
		}
		s.tracked[ch.Table+"\x00"+idKey(ch.Table, obj)] = trackedChange{ch.Table, obj}
	}
}

// stopTracking ends the tracking of changes for a rebase.
func (s *Store) stopTracking() {
	s.wmu.Lock()
	s.tracked = nil
	s.wmu.Unlock()
}

// settledHeadLocked waits until every write appended is durable (or failed)
// and returns the newest state, holding wmu. It fails when the store is
// closing, a write failed or the base is no longer b.
func (s *Store) settledHeadLocked(b *base) (*memdb.MemDB, error) {
	if s.closed {
		return nil, errSnapshotStopped
	}
	s.smu.Lock()
	defer s.smu.Unlock()
	for len(s.pending) > 0 {
		s.drained.Wait()
	}
	switch {
	case s.broken != nil:
		return nil, fmt.Errorf("rebuilding the base: %w", s.unavailable(s.broken))
	case s.base != b:
		return nil, errors.New("rebuilding the base: the base changed meanwhile")
	}
	return s.head.Snapshot(), nil
}

// delta is a delta being built over a new base.
type delta struct {
	nb      *base
	db      *memdb.MemDB
	tx      *memdb.Txn
	entries map[string]any // what tx holds, by table and key
}

func newDelta(nb *base) *delta {
	db := newDB()
	return &delta{nb: nb, db: db, tx: db.Txn(true), entries: map[string]any{}}
}

// set makes the delta hold what, over the new base, gives cur (a record, or
// nil when deleted) for key in table.
func (d *delta) set(table, key string, cur any) error {
	inBase := d.nb.get(table, key)
	var want any
	switch {
	case cur != nil && cur != inBase:
		want = cur
	case cur == nil && inBase != nil:
		want = &tombstone{key: key}
	}
	id := table + "\x00" + key
	var err error
	if want != nil {
		d.entries[id] = want
		err = d.tx.Insert(table, want)
	} else if had, ok := d.entries[id]; ok {
		delete(d.entries, id)
		err = d.tx.Delete(table, had)
	}
	if err != nil {
		return fmt.Errorf("rebuilding the base: %s %q: %w", table, key, err)
	}
	return nil
}
