package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestLogShorterThanSnapshot gives the newest snapshot a log that does not
// reach its last record. Open refuses, alike twice and changing nothing: the
// log lost its end, or the snapshot is not this registry's. A repair
// continues from the snapshot, losing nothing it holds, and sets aside the
// older snapshots, which lead into what is missing; the start after it is
// an ordinary one with a clean Verify.
func TestLogShorterThanSnapshot(t *testing.T) {
	opts := Options{SnapshotRecords: -1, SnapshotBytes: -1}
	// history writes an older snapshot at 3 and a newer one at 12, and
	// returns the state as of the newer one.
	history := func(t *testing.T, prefix string) (*Store, string, state) {
		s, dir := openTest(t, opts)
		putClients(t, s, prefix+"a", 3)
		snapshot(t, s)
		putClients(t, s, prefix+"b", 9)
		snapshot(t, s)
		return s, dir, stateOf(s)
	}
	tests := []struct {
		name string
		// damage breaks the directory and returns the file Open must name
		// and the state a repair must keep (nil: not checked).
		damage func(t *testing.T) (dir, named string, want *state)
	}{
		{"another registry's snapshot past the log's end", func(t *testing.T) (string, string,
			*state) {
			s, dir, _ := history(t, "own")
			s.Close()
			other, odir, _ := history(t, "foreign")
			putClients(t, other, "foreign-more", 10)
			snapshot(t, other)
			other.Close()
			name := snapshotName(22)
			copyFile(t, filepath.Join(odir, name), filepath.Join(dir, name))
			return dir, filepath.Join(dir, segmentName(1)), nil
		}},
		{"log cut at a record boundary before the snapshot's last", func(t *testing.T) (string,
			string, *state) {
			s, dir, want := history(t, "")
			s.Close()
			seg := filepath.Join(dir, segmentName(1))
			offs := recordOffsets(t, mustRead(t, seg))
			if err := os.Truncate(seg, offs[8]); err != nil { // records 1 to 8 left
				t.Fatal(err)
			}
			return dir, seg, &want
		}},
		{"every segment removed", func(t *testing.T) (string, string, *state) {
			s, dir, want := history(t, "")
			putClients(t, s, "c", 5)
			s.Close()
			for _, seq := range listing(t, dir).segments {
				os.Remove(filepath.Join(dir, segmentName(seq)))
			}
			return dir, filepath.Join(dir, snapshotName(12)), &want
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, named, want := tt.damage(t)
			refusedTwice(t, dir, named, opts)
			repairedThenOrdinary(t, dir, opts, want)
		})
	}
}

// copyFile copies the file at src to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.WriteFile(dst, mustRead(t, src), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFallbackLogChecked damages the log that only the older snapshot
// needs. Open does not need it and starts, but warns about it without
// waiting for the day the fallback is needed.
func TestFallbackLogChecked(t *testing.T) {
	opts := Options{SegmentSize: 600, SnapshotRecords: -1, SnapshotBytes: -1}
	s, dir := openTest(t, opts)
	putClients(t, s, "a", 3)
	snapshot(t, s)
	putClients(t, s, "b", 20)
	snapshot(t, s)
	putClients(t, s, "c", 2)
	s.Close()
	l := listing(t, dir)
	var victim string
	for _, first := range l.segments {
		if first > l.snapshots[0]+1 && first+2 < l.snapshots[1] {
			victim = filepath.Join(dir, segmentName(first))
			break
		}
	}
	if victim == "" {
		t.Fatalf("no segment only the older snapshot needs: %+v", l)
	}
	offs := recordOffsets(t, mustRead(t, victim))
	flipByte(t, victim, offs[0]+recHeaderSize+5)

	logs := &logRecorder{}
	o := opts
	o.Logger = slog.New(logs)
	s = openDir(t, dir, o)
	defer s.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(logs.matching("WARN", "fallback", victim)) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := logs.matching("WARN", "fallback", victim, fmt.Sprint("offset=", offs[0])); len(got) != 1 {
		t.Errorf("want one warning naming %s at %d, got %q", victim, offs[0], logs.recs)
	}
}
