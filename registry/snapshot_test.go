package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func snapshot(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Snapshot(context.Background()); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
}

func listing(t *testing.T, dir string) dirListing {
	t.Helper()
	l, err := listDir(OSFS{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestSnapshotReopen(t *testing.T) {
	tests := []struct {
		name string
		// after writes the history, taking snapshots along the way.
		after func(t *testing.T, s *Store)
	}{
		{"snapshot last", func(t *testing.T, s *Store) { writeHistory(t, s); snapshot(t, s) }},
		{"writes after snapshot", func(t *testing.T, s *Store) {
			update(t, s, testFixture().putAll)
			snapshot(t, s)
			writeHistory(t, s)
		}},
		{"empty store", func(t *testing.T, s *Store) { snapshot(t, s) }},
		{"many snapshots", func(t *testing.T, s *Store) {
			for range 4 {
				writeHistory(t, s)
				snapshot(t, s)
			}
			update(t, s, func(tx *Txn) error { return tx.DeleteClient("c3") })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{SegmentSize: 1000}
			s, dir := openTest(t, opts)
			tt.after(t, s)
			want := stateOf(s)
			s = reopen(t, s, dir, opts)
			if diff := cmp.Diff(want, stateOf(s)); diff != "" {
				t.Errorf("state after reopen (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompaction(t *testing.T) {
	opts := Options{SegmentSize: 1000, KeepSnapshots: 2}
	s, dir := openTest(t, opts)
	var snaps []uint64
	for range 3 {
		writeHistory(t, s)
		snapshot(t, s)
		snaps = append(snaps, s.durable.seq)
	}
	l := listing(t, dir)
	if diff := cmp.Diff(snaps[1:], l.snapshots); diff != "" {
		t.Errorf("snapshots kept (-want +got):\n%s", diff)
	}
	// The log is kept from the oldest snapshot kept, and no further back.
	if len(l.segments) < 2 || l.segments[0] > snaps[1]+1 || l.segments[1] <= snaps[1]+1 {
		t.Errorf("segments %v do not start just before the oldest snapshot kept (%d)",
			l.segments, snaps[1])
	}
	for _, name := range []string{snapshotName(snaps[1]), segmentName(l.segments[0])} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != filePerm {
			t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), os.FileMode(filePerm))
		}
	}
}

func TestSnapshotFallback(t *testing.T) {
	opts := Options{SegmentSize: 1000}
	s, dir := openTest(t, opts)
	writeHistory(t, s)
	snapshot(t, s)
	update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("c7")) })
	snapshot(t, s)
	update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("c8")) })
	want := stateOf(s)
	s.Close()

	l := listing(t, dir)
	newest := filepath.Join(dir, snapshotName(l.snapshots[len(l.snapshots)-1]))
	flipByte(t, newest, 40)

	s = openDir(t, dir, opts)
	if diff := cmp.Diff(want, stateOf(s)); diff != "" {
		t.Errorf("state after falling back (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(newest); !os.IsNotExist(err) {
		t.Errorf("the damaged snapshot is still in place: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, damagedDir)); len(ents) != 1 {
		t.Errorf("damaged/ holds %d files, want the damaged snapshot", len(ents))
	}
}

// TestNoSnapshotWhenNeeded damages the only snapshot after the log before
// it was compacted away. Open refuses, naming the snapshot and the offset,
// and changes nothing, so a second start says the same; a repair sets the
// snapshot aside and keeps the log after it, and the start after that is
// an ordinary one.
func TestNoSnapshotWhenNeeded(t *testing.T) {
	opts := Options{SegmentSize: 600, KeepSnapshots: 1}
	s, dir := openTest(t, opts)
	writeHistory(t, s)
	snapshot(t, s)
	update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("c7")) })
	s.Close()
	l := listing(t, dir)
	if l.segments[0] == 1 {
		t.Fatalf("compaction kept the whole log: %v", l.segments)
	}
	snap := filepath.Join(dir, snapshotName(l.snapshots[0]))
	flipByte(t, snap, 40)
	before := dirFiles(t, dir)

	var first string
	for try := range 2 {
		_, err := Open(context.Background(), dir, opts)
		var fe *FileError
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "no snapshot verifies") ||
			!errors.As(err, &fe) || fe.Path != snap || fe.Offset == 0 {
			t.Fatalf("Open = %v, want a refusal naming %s and the offset of the damage", err, snap)
		}
		if try == 0 {
			first = err.Error()
		} else if err.Error() != first {
			t.Errorf("the second start says %q, the first said %q", err, first)
		}
		if diff := cmp.Diff(before, dirFiles(t, dir)); diff != "" {
			t.Fatalf("a refused start changed the directory (-before +after):\n%s", diff)
		}
	}

	logs := &logRecorder{}
	repairOpts := opts
	repairOpts.Repair, repairOpts.Logger = true, slog.New(logs)
	s, err := Open(context.Background(), dir, repairOpts)
	if err != nil {
		t.Fatalf("Open with Repair: %v", err)
	}
	if s.Client("c7") == nil || s.Client("c3") != nil {
		t.Errorf("after the repair: c7 %v, c3 %v; want only what the log after the snapshot holds",
			s.Client("c7") != nil, s.Client("c3") != nil)
	}
	if len(logs.matching("WARN", "repair", "first_missing=1")) != 1 {
		t.Errorf("the repair does not say which records it dropped: %q", logs.recs)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, damagedDir)); len(ents) != 1 {
		t.Errorf("damaged/ holds %d files, want the damaged snapshot", len(ents))
	}
	update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("c8")) })
	s = reopen(t, s, dir, opts)
	if s.Client("c8") == nil || s.Client("c7") == nil {
		t.Errorf("an ordinary start after the repair lost c7 or c8")
	}
	s.Close()
	if rep, err := Verify(dir); err != nil || len(rep.Problems) != 0 {
		t.Errorf("Verify after the repair: %v %+v", err, rep.Problems)
	}
}

// TestMissingSegments removes the first segment of a log that no snapshot
// covers: Open refuses naming the records missing, and a repair keeps what
// comes after them. (A segment missing in the middle breaks the chain of
// the one after it: TestRepairSetsAsideLaterSegments.)
func TestMissingSegments(t *testing.T) {
	opts := Options{SegmentSize: 600, SnapshotRecords: -1, SnapshotBytes: -1}
	s, dir := openTest(t, opts)
	putClients(t, s, "m", 30)
	s.Close()
	l := listing(t, dir)
	if len(l.segments) < 3 {
		t.Fatalf("want at least 3 segments, got %v", l.segments)
	}
	if err := os.Remove(filepath.Join(dir, segmentName(1))); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), dir, opts)
	want := fmt.Sprintf("%s at offset 0: log records 1 to %d are missing",
		filepath.Join(dir, segmentName(l.segments[1])), l.segments[1]-1)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open = %v, want a refusal saying %q", err, want)
	}
	if rep, err := Verify(dir); err != nil || rep.OK() {
		t.Errorf("Verify = %+v, %v; want the problem that stops Open", rep.Problems, err)
	}
	repairOpts := opts
	repairOpts.Repair = true
	s, err = Open(context.Background(), dir, repairOpts)
	if err != nil {
		t.Fatalf("Open with Repair: %v", err)
	}
	if s.Client("m0") != nil || s.Client("m29") == nil {
		t.Errorf("after the repair: m0 %v, m29 %v; want only the records after the gap",
			s.Client("m0") != nil, s.Client("m29") != nil)
	}
	n := len(s.Clients())
	s = reopen(t, s, dir, opts)
	if got := len(s.Clients()); got != n {
		t.Errorf("an ordinary start after the repair holds %d clients, want %d", got, n)
	}
}

func TestLeftoversCleaned(t *testing.T) {
	opts := Options{SegmentSize: 600, KeepSnapshots: 1}
	s, dir := openTest(t, opts)
	writeHistory(t, s)
	before := listing(t, dir).segments
	snapshot(t, s)
	writeHistory(t, s)
	want := stateOf(s)
	s.Close()

	// An interrupted compaction: a temporary snapshot, and a segment
	// wholly below the snapshot that was not removed yet.
	tmp := filepath.Join(dir, snapshotName(999)+tmpSuffix)
	os.WriteFile(tmp, []byte("partial"), 0o600)
	// A segment whose creation was interrupted before its header was
	// durable.
	segTmp := filepath.Join(dir, segmentName(9999)+tmpSuffix)
	os.WriteFile(segTmp, nil, 0o600)
	// Someone else's file is left alone.
	notes := filepath.Join(dir, "notes.tmp")
	os.WriteFile(notes, []byte("mine"), 0o600)
	old := filepath.Join(dir, segmentName(before[0]))
	os.WriteFile(old, mustRead(t, filepath.Join(dir, segmentName(listing(t, dir).segments[0]))),
		0o600)

	s = openDir(t, dir, opts)
	if diff := cmp.Diff(want, stateOf(s)); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	for _, p := range []string{tmp, segTmp, old} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("leftover %s not removed (%v)", filepath.Base(p), err)
		}
	}
	if _, err := os.Stat(notes); err != nil {
		t.Errorf("a file that is not the registry's was removed: %v", err)
	}
}

func TestAutomaticSnapshot(t *testing.T) {
	done := make(chan error, 10)
	opts := Options{
		SnapshotRecords: 5,
		OnSnapshot:      func(_ time.Duration, err error) { done <- err },
	}
	s, dir := openTest(t, opts)
	writeHistory(t, s)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("automatic snapshot: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no automatic snapshot after many records")
	}
	if len(listing(t, dir).snapshots) == 0 {
		t.Errorf("no snapshot file")
	}
}

func TestSnapshotFutureVersion(t *testing.T) {
	s, dir := openTest(t, Options{})
	writeHistory(t, s)
	snapshot(t, s)
	s.Close()
	path := filepath.Join(dir, snapshotName(listing(t, dir).snapshots[0]))
	b := mustRead(t, path)
	h, err := parseSnapHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	h.version = snapVersion + 1
	copy(b, h.append(nil))
	os.WriteFile(path, b, 0o600)

	_, err = Open(context.Background(), dir, Options{})
	var fe *FileError
	if !errors.Is(err, ErrVersion) || !errors.As(err, &fe) || fe.Path != path {
		t.Fatalf("Open = %v, want a version error naming %s", err, path)
	}
}

// TestBinaryCodecCoversEveryField fills every field of every record type and
// checks the snapshot encoding keeps it: a field added to a record without
// a codec change fails here.
func TestBinaryCodecCoversEveryField(t *testing.T) {
	for _, c := range codecs {
		t.Run(c.table, func(t *testing.T) {
			obj, err := c.decode([]byte("{}"))
			if err != nil {
				t.Fatal(err)
			}
			fill(reflect.ValueOf(obj).Elem())
			got, err := decodeBinary(c.put, string(encodeBinary(nil, obj)), snapVersion)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(obj, got); diff != "" {
				t.Errorf("binary round trip (-want +got):\n%s", diff)
			}
			// A cut record never decodes.
			enc := encodeBinary(nil, obj)
			if _, err := decodeBinary(c.put, string(enc[:len(enc)-1]), snapVersion); err == nil {
				t.Errorf("a cut record decoded")
			}
		})
	}
}

func fill(v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Interface().(type) {
		case string:
			f.SetString("value-" + v.Type().Field(i).Name)
		case []string:
			f.Set(reflect.ValueOf([]string{"a", "b-" + v.Type().Field(i).Name}))
		case []byte:
			f.SetBytes([]byte{1, 2, 3, byte(i)})
		case time.Time:
			f.Set(reflect.ValueOf(time.Unix(1700000000+int64(i), int64(i)).UTC()))
		default:
			panic("fill: unhandled field type " + f.Type().String())
		}
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b := mustRead(t, path)
	b[off] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(b)
}

// TestFallbackWithGap damages the newest snapshot when the log after the
// older one has lost its first segment: Open refuses, naming the damaged
// snapshot, and a repair keeps the older snapshot and the log after the gap.
func TestFallbackWithGap(t *testing.T) {
	opts := Options{SegmentSize: 600, SnapshotRecords: -1, SnapshotBytes: -1}
	s, dir := openTest(t, opts)
	update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("old")) })
	snapshot(t, s)
	putClients(t, s, "g", 20)
	snapshot(t, s)
	update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("last")) })
	s.Close()

	l := listing(t, dir)
	if len(l.snapshots) != 2 || len(l.segments) < 3 {
		t.Fatalf("want 2 snapshots and several segments, got %+v", l)
	}
	newest := filepath.Join(dir, snapshotName(l.snapshots[1]))
	flipByte(t, newest, 40)
	for _, seq := range l.segments {
		if seq <= l.snapshots[0]+1 {
			os.Remove(filepath.Join(dir, segmentName(seq)))
		}
	}

	_, err := Open(context.Background(), dir, opts)
	var fe *FileError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &fe) || fe.Path != newest ||
		!strings.Contains(err.Error(), "older snapshot covers") {
		t.Fatalf("Open = %v, want a refusal naming %s", err, newest)
	}
	repairOpts := opts
	repairOpts.Repair = true
	s, err = Open(context.Background(), dir, repairOpts)
	if err != nil {
		t.Fatalf("Open with Repair: %v", err)
	}
	if s.Client("old") == nil || s.Client("last") == nil {
		t.Errorf("after the repair: old %v, last %v; want both",
			s.Client("old") != nil, s.Client("last") != nil)
	}
	n := len(s.Clients())
	s = reopen(t, s, dir, opts)
	if got := len(s.Clients()); got != n {
		t.Errorf("an ordinary start after the repair holds %d clients, want %d", got, n)
	}
	s.Close()
	if rep, err := Verify(dir); err != nil || len(rep.Problems) != 0 {
		t.Errorf("Verify after the repair: %v %+v", err, rep.Problems)
	}
}

// TestMisnamedSnapshot copies a snapshot under a newer name. Open passes
// over it (compaction by file name would remove log still needed), sets it
// aside, and loses nothing across later snapshots and starts.
func TestMisnamedSnapshot(t *testing.T) {
	opts := Options{SnapshotRecords: 3}
	s, dir := openTest(t, opts)
	putClients(t, s, "n", 8)
	s.Close()
	l := listing(t, dir)
	oldest := filepath.Join(dir, snapshotName(l.snapshots[0]))
	fake := filepath.Join(dir, snapshotName(l.snapshots[len(l.snapshots)-1]+40))
	if err := os.WriteFile(fake, mustRead(t, oldest), 0o600); err != nil {
		t.Fatal(err)
	}

	logs := &logRecorder{}
	s, err := Open(context.Background(), dir, Options{SnapshotRecords: 3, Logger: slog.New(logs)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if len(logs.matching("WARN", "does not verify", "names sequence")) != 1 {
		t.Errorf("no warning about the misnamed snapshot: %q", logs.recs)
	}
	if _, err := os.Stat(fake); !os.IsNotExist(err) {
		t.Errorf("the misnamed snapshot is still in place: %v", err)
	}
	putClients(t, s, "m", 10)
	survivesReopen(t, s, dir, opts)
}

// TestVerifyAgreesWithOpen removes the segment that continues the only
// snapshot: Verify must report what Open refuses, not only that the
// snapshot cannot serve as a fallback.
func TestVerifyAgreesWithOpen(t *testing.T) {
	opts := Options{SegmentSize: 600, SnapshotRecords: -1, SnapshotBytes: -1}
	s, dir := openTest(t, opts)
	update(t, s, testFixture().putAll)
	snapshot(t, s)
	putClients(t, s, "v", 30)
	s.Close()
	l := listing(t, dir)
	for _, seq := range l.segments {
		if seq <= l.snapshots[0]+1 {
			os.Remove(filepath.Join(dir, segmentName(seq)))
		}
	}
	_, openErr := Open(context.Background(), dir, opts)
	var fe *FileError
	if !errors.As(openErr, &fe) {
		t.Fatalf("Open = %v, want a refusal naming a file", openErr)
	}
	rep, err := Verify(dir)
	if err != nil || rep.OK() {
		t.Fatalf("Verify = %+v, %v; want the problem that stops Open", rep.Problems, err)
	}
	found := false
	for _, p := range rep.Problems {
		found = found || (p.File == fe.Path && p.Offset == fe.Offset && !p.Torn)
	}
	if !found {
		t.Errorf("Verify reports %+v, not Open's %v", rep.Problems, openErr)
	}
}

// TestSnapshotNotMatchingLog puts another registry's snapshot of the same
// sequence in place of the newest one. It verifies on its own, but not
// against the log: Verify reports it, and Open (even with Repair) falls
// back to the older snapshot and the log rather than cutting the log.
func TestSnapshotNotMatchingLog(t *testing.T) {
	opts := Options{SnapshotRecords: -1, SnapshotBytes: -1}
	build := func(prefix string) (string, state) {
		s, dir := openTest(t, opts)
		for i := range 10 {
			update(t, s, func(tx *Txn) error {
				return tx.PutClient(testClient(fmt.Sprint(prefix, i)))
			})
			if i == 2 || i == 7 {
				snapshot(t, s)
			}
		}
		st := stateOf(s)
		s.Close()
		return dir, st
	}
	dir, want := build("own")
	other, _ := build("foreign")
	l := listing(t, dir)
	newest := snapshotName(l.snapshots[len(l.snapshots)-1])
	if err := os.WriteFile(filepath.Join(dir, newest),
		mustRead(t, filepath.Join(other, newest)), 0o600); err != nil {
		t.Fatal(err)
	}

	rep, err := Verify(dir)
	if err != nil || rep.OK() {
		t.Errorf("Verify = %+v, %v; want the snapshot that does not match the log", rep.Problems,
			err)
	}
	for _, repair := range []bool{true, false} {
		o := opts
		o.Repair = repair
		s, err := Open(context.Background(), dir, o)
		if err != nil {
			t.Fatalf("Open (repair %v): %v", repair, err)
		}
		if diff := cmp.Diff(want, stateOf(s)); diff != "" {
			t.Errorf("state (repair %v) (-want +got):\n%s", repair, diff)
		}
		s.Close()
	}
	if rep, err := Verify(dir); err != nil || len(rep.Problems) != 0 {
		t.Errorf("Verify after the start: %v %+v", err, rep.Problems)
	}
}
