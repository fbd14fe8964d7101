package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// bigClients writes n clients with 2000-byte names, so that each record
// spans several disk sectors.
func bigClients(t *testing.T, s *Store, prefix string, n int) {
	t.Helper()
	for i := range n {
		c := testClient(fmt.Sprint(prefix, i))
		c.Name = strings.Repeat("x", 2000)
		update(t, s, func(tx *Txn) error { return tx.PutClient(c) })
	}
}

// refusedTwice checks that Open refuses dir twice alike without changing
// it, with an error naming path.
func refusedTwice(t *testing.T, dir, path string, opts Options) {
	t.Helper()
	before := dirFiles(t, dir)
	var first string
	for try := range 2 {
		_, err := Open(context.Background(), dir, opts)
		var fe *FileError
		if !errors.Is(err, ErrCorrupt) || !errors.As(err, &fe) || fe.Path != path {
			t.Fatalf("Open = %v, want a refusal naming %s", err, path)
		}
		if try == 0 {
			first = err.Error()
		} else if err.Error() != first {
			t.Errorf("the second refusal says %q, the first %q", err, first)
		}
	}
	after := dirFiles(t, dir)
	delete(before, lockName)
	delete(after, lockName)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("a refused Open changed the directory (-before +after):\n%s", diff)
	}
	if rep, err := Verify(dir); err != nil || rep.OK() {
		t.Errorf("Verify = %+v, %v; want what stops Open", rep.Problems, err)
	}
}

// repairedThenOrdinary opens dir with Repair, checks the state against
// want (when given), writes more, and checks that an ordinary start keeps
// it all and that Verify is then clean.
func repairedThenOrdinary(t *testing.T, dir string, opts Options, want *state) {
	t.Helper()
	repair := opts
	repair.Repair = true
	s := openDir(t, dir, repair)
	if want != nil {
		if diff := cmp.Diff(*want, stateOf(s)); diff != "" {
			t.Errorf("state after the repair (-want +got):\n%s", diff)
		}
	}
	putClients(t, s, "after-repair", 2)
	s = survivesReopen(t, s, dir, opts)
	s.Close()
	if rep, err := Verify(dir); err != nil || len(rep.Problems) != 0 {
		t.Errorf("Verify after the repair: %v %+v", err, rep.Problems)
	}
}

// TestCoveredDamageIsNotTorn zeroes a sector inside a record that the
// snapshot covers, in the last segment. It looks like a torn write, but the
// record was durable before the snapshot was written: Open refuses rather
// than cut the log there (which dropped the records after the snapshot),
// and a repair keeps everything.
func TestCoveredDamageIsNotTorn(t *testing.T) {
	opts := Options{SnapshotRecords: -1, SnapshotBytes: -1}
	s, dir := openTest(t, opts)
	bigClients(t, s, "p", 10)
	snapshot(t, s)
	bigClients(t, s, "q", 5)
	want := stateOf(s)
	s.Close()
	seg := filepath.Join(dir, segmentName(1))
	offs := recordOffsets(t, mustRead(t, seg))
	b := mustRead(t, seg)
	start := (offs[3]/sectorSize + 2) * sectorSize
	clear(b[start : start+sectorSize])
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}

	refusedTwice(t, dir, seg, opts)
	repairedThenOrdinary(t, dir, opts, &want)
}

// TestSnapshotBeyondLog puts another registry's snapshot, of a sequence
// past the end of the log, in the directory. Open refuses (the log lost its
// end, or the snapshot is not this registry's) instead of replacing the
// state with the snapshot's; a repair continues from the snapshot, and the
// start after it is an ordinary one with a clean Verify.
func TestSnapshotBeyondLog(t *testing.T) {
	opts := Options{SnapshotRecords: -1, SnapshotBytes: -1}
	build := func(prefix string, n, at int) string {
		s, dir := openTest(t, opts)
		putClients(t, s, prefix, at)
		snapshot(t, s)
		putClients(t, s, prefix+"-", n-at)
		s.Close()
		return dir
	}
	dir, other := build("own", 15, 10), build("foreign", 25, 20)
	name := snapshotName(20)
	if err := os.WriteFile(filepath.Join(dir, name), mustRead(t, filepath.Join(other, name)),
		0o600); err != nil {
		t.Fatal(err)
	}
	refusedTwice(t, dir, filepath.Join(dir, segmentName(1)), opts)
	repairedThenOrdinary(t, dir, opts, nil)
}

// TestLogEndsBeforeSnapshot cuts the log at a record boundary before the
// newest snapshot's last record: Open refuses; a repair continues from the
// snapshot, losing nothing it holds, and sets aside the older snapshot,
// which leads into the missing end.
func TestLogEndsBeforeSnapshot(t *testing.T) {
	opts := Options{SnapshotRecords: -1, SnapshotBytes: -1}
	s, dir := openTest(t, opts)
	putClients(t, s, "a", 3)
	snapshot(t, s)
	putClients(t, s, "b", 9)
	snapshot(t, s)
	want := stateOf(s)
	s.Close()
	seg := filepath.Join(dir, segmentName(1))
	offs := recordOffsets(t, mustRead(t, seg))
	if err := os.Truncate(seg, offs[8]); err != nil { // records 1 to 8 left
		t.Fatal(err)
	}
	refusedTwice(t, dir, seg, opts)
	repairedThenOrdinary(t, dir, opts, &want)
}

// TestLogMissing removes every segment under a snapshot. Compaction always
// keeps the last one, so Open refuses; a repair continues from the
// snapshot.
func TestLogMissing(t *testing.T) {
	opts := Options{SnapshotRecords: -1, SnapshotBytes: -1}
	s, dir := openTest(t, opts)
	putClients(t, s, "o", 3)
	snapshot(t, s) // an older snapshot, which leads into the missing log
	putClients(t, s, "p", 7)
	snapshot(t, s)
	want := stateOf(s)
	putClients(t, s, "q", 5)
	s.Close()
	for _, seq := range listing(t, dir).segments {
		os.Remove(filepath.Join(dir, segmentName(seq)))
	}
	refusedTwice(t, dir, filepath.Join(dir, snapshotName(10)), opts)
	repairedThenOrdinary(t, dir, opts, &want)
}
