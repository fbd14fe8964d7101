package registry

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// These tests damage the log a snapshot covers in ways that make a repair
// search for where the log after the snapshot resumes (findRecord,
// endsWithSnapshot). They were found by a helper briefed to break it.

// TestRepairNamesWhatItDrops damages a covered record's header and the
// header of the only record after the snapshot, the segment's last. The
// repair cannot keep that record; it must say it set it aside rather than
// claim to have kept what follows.
func TestRepairNamesWhatItDrops(t *testing.T) {
	opts := Options{SnapshotRecords: -1, SnapshotBytes: -1}
	s, dir := openTest(t, opts)
	putClients(t, s, "p", 5)
	snapshot(t, s)
	putClients(t, s, "q", 1) // record 6
	s.Close()
	seg := filepath.Join(dir, segmentName(1))
	offs := recordOffsets(t, mustRead(t, seg))
	flipByte(t, seg, offs[2]+18) // record 3's header checksum
	flipByte(t, seg, offs[5]+18) // record 6's header checksum
	refusedTwice(t, dir, seg, opts)

	logs := &logRecorder{}
	repair := opts
	repair.Repair, repair.Logger = true, slog.New(logs)
	s, err := Open(context.Background(), dir, repair)
	if err != nil {
		t.Fatalf("Open with Repair: %v", err)
	}
	defer s.Close()
	if s.Client("q0") == nil && len(logs.matching("WARN", "set aside damaged log data")) != 1 {
		t.Errorf("record 6 was dropped and no warning says so: %q", logs.recs)
	}
	if got := logs.matching("passed over"); len(got) != 0 {
		t.Errorf("the repair claims to have kept what follows the damage: %q", got)
	}
}

// TestRepairPassesOverSegmentHeader damages the header of the segment that
// holds the snapshot's records and the ones after it: they chain from the
// snapshot's checksum, so the repair keeps them.
func TestRepairPassesOverSegmentHeader(t *testing.T) {
	opts := Options{SnapshotRecords: -1, SnapshotBytes: -1}
	s, dir := openTest(t, opts)
	putClients(t, s, "p", 5)
	snapshot(t, s)
	putClients(t, s, "q", 3)
	want := stateOf(s)
	s.Close()
	seg := filepath.Join(dir, segmentName(1))
	flipByte(t, seg, 2) // the magic
	refusedTwice(t, dir, seg, opts)
	repairedThenOrdinary(t, dir, opts, &want)
}

// TestRepairIgnoresMisplacedCopy writes an exact copy of the record after
// the snapshot in the place of a covered record, and damages the covered
// record before it. The search must resume at the real record, from which
// the chain runs on, not at the stale copy.
func TestRepairIgnoresMisplacedCopy(t *testing.T) {
	opts := Options{SnapshotRecords: -1, SnapshotBytes: -1}
	s, dir := openTest(t, opts)
	putClients(t, s, "p", 5)
	snapshot(t, s)
	putClients(t, s, "q", 4)
	want := stateOf(s)
	s.Close()
	seg := filepath.Join(dir, segmentName(1))
	b := mustRead(t, seg)
	offs := recordOffsets(t, b)
	if offs[4]-offs[3] != offs[6]-offs[5] {
		t.Fatal("records 4 and 6 differ in size")
	}
	copy(b[offs[3]:offs[4]], b[offs[5]:offs[6]]) // record 6 over record 4
	b[offs[2]+18] ^= 0x40                        // record 3's header checksum
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	refusedTwice(t, dir, seg, opts)
	repairedThenOrdinary(t, dir, opts, &want)
}

// TestRepairForeignSnapshotWithCoveredDamage puts another registry's
// snapshot of the same sequence in place of the newest, and damages a record
// both snapshots cover. The repair must see that the snapshot is not this
// log's and fall back to the older one, keeping every record, instead of
// cutting the log to fit the foreign snapshot.
func TestRepairForeignSnapshotWithCoveredDamage(t *testing.T) {
	opts := Options{SnapshotRecords: -1, SnapshotBytes: -1}
	s, dir := openTest(t, opts)
	putClients(t, s, "p", 3)
	snapshot(t, s)
	putClients(t, s, "r", 4)
	snapshot(t, s)
	putClients(t, s, "q", 3)
	want := stateOf(s)
	s.Close()

	o, odir := openTest(t, opts)
	putClients(t, o, "other", 7)
	snapshot(t, o)
	o.Close()
	copyFile(t, filepath.Join(odir, snapshotName(7)), filepath.Join(dir, snapshotName(7)))
	seg := filepath.Join(dir, segmentName(1))
	offs := recordOffsets(t, mustRead(t, seg))
	flipByte(t, seg, offs[1]+18) // record 2's header checksum
	refusedTwice(t, dir, seg, opts)
	repairedThenOrdinary(t, dir, opts, &want)
	if _, err := os.Stat(filepath.Join(dir, snapshotName(7))); err == nil {
		t.Error("the foreign snapshot is still in place")
	}
}
