package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// logRecorder is a slog handler that keeps what is logged.
type logRecorder struct {
	mu   sync.Mutex
	recs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, b.String())
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// matching returns the logged lines that contain every one of subs.
func (l *logRecorder) matching(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(r, s)
		}
		if ok {
			out = append(out, r)
		}
	}
	return out
}

// numbered writes n updates, update i putting client "n<i>" with a name of
// nameLen bytes, and returns the path of the segment holding them and the
// offset of each record (record i at offs[i]).
func numbered(t *testing.T, n, nameLen int) (dir, seg string, offs []int64) {
	t.Helper()
	s, dir := openTest(t, Options{})
	for i := range n {
		c := testClient(fmt.Sprint("n", i))
		c.Name = strings.Repeat("x", nameLen)
		update(t, s, func(tx *Txn) error { return tx.PutClient(c) })
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg = filepath.Join(dir, segmentName(1))
	return dir, seg, recordOffsets(t, mustRead(t, seg))
}

func recordOffsets(t *testing.T, data []byte) []int64 {
	t.Helper()
	var offs []int64
	off := int64(segHeaderSize)
	for off < int64(len(data)) {
		h, ok := parseRecHeader(data[off:])
		if !ok {
			t.Fatalf("no record header at %d", off)
		}
		offs = append(offs, off)
		off += int64(recordSize(int(h.length)))
	}
	return offs
}

// reframe rewrites the segment at path, changing record i with edit and
// rechaining every checksum, as a newer or buggy writer could have.
func reframe(t *testing.T, path string, i int, edit func(typ, ver *uint8, payload *[]byte)) {
	t.Helper()
	data := mustRead(t, path)
	h, err := parseSegHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	out := h.append(nil)
	crc := h.prevCRC
	for j, off := range recordOffsets(t, data) {
		rh, _ := parseRecHeader(data[off:])
		payload := bytes.Clone(data[off+recHeaderSize : off+recHeaderSize+int64(rh.length)])
		typ, ver := rh.typ, rh.version
		if j == i {
			edit(&typ, &ver, &payload)
		}
		out, crc = appendRecord(out, typ, ver, rh.seq, crc, payload)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTornTail(t *testing.T) {
	const n = 6
	tests := []struct {
		name string
		// damage changes the segment; it returns the offset at which the
		// log is cut and the number of updates that survive.
		damage func(t *testing.T, seg string, offs []int64) (int64, int)
	}{
		{"cut mid-record", func(t *testing.T, seg string, offs []int64) (int64, int) {
			os.Truncate(seg, offs[n-1]+100)
			return offs[n-1], n - 1
		}},
		{"cut mid-header", func(t *testing.T, seg string, offs []int64) (int64, int) {
			os.Truncate(seg, offs[n-1]+5)
			return offs[n-1], n - 1
		}},
		{"zero-filled tail", func(t *testing.T, seg string, offs []int64) (int64, int) {
			fi, _ := os.Stat(seg)
			os.Truncate(seg, fi.Size()+8192)
			return fi.Size(), n
		}},
		{"zeroed sector in the last record", func(t *testing.T, seg string, offs []int64) (int64, int) {
			b := mustRead(t, seg)
			start := (offs[n-1]/sectorSize + 2) * sectorSize
			clear(b[start : start+sectorSize])
			os.WriteFile(seg, b, 0o600)
			return offs[n-1], n - 1
		}},
		{"zeroed last record and tail", func(t *testing.T, seg string, offs []int64) (int64, int) {
			b := mustRead(t, seg)
			clear(b[offs[n-1]:])
			os.WriteFile(seg, b, 0o600)
			return offs[n-1], n - 1
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, seg, offs := numbered(t, n, 2000)
			orig := mustRead(t, seg)
			cut, survive := tt.damage(t, seg, offs)
			damaged := mustRead(t, seg)

			logs := &logRecorder{}
			s := openDir(t, dir, Options{Logger: slog.New(logs)})
			if got := len(s.Clients()); got != survive {
				t.Errorf("got %d clients, want %d", got, survive)
			}
			warn := logs.matching("WARN", "torn", seg, fmt.Sprintf("offset=%d", cut))
			if len(warn) != 1 {
				t.Errorf("want one warning naming %s and offset %d, got %q", seg, cut, logs.recs)
			}
			if got := mustRead(t, seg); !bytes.Equal(got, orig[:min(cut, int64(len(orig)))]) {
				t.Errorf("segment is %d bytes after the repair, want the %d before the damage",
					len(got), cut)
			}
			copies, _ := filepath.Glob(filepath.Join(dir, damagedDir, segmentName(1)+".*"))
			if len(copies) != 1 || !bytes.Equal(mustRead(t, copies[0]), damaged) {
				t.Errorf("want one copy of the damaged segment aside, got %v", copies)
			}
			// The log goes on from the cut.
			update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("after")) })
			s = reopen(t, s, dir, Options{})
			if got := len(s.Clients()); got != survive+1 {
				t.Errorf("after another reopen: got %d clients, want %d", got, survive+1)
			}
		})
	}
}

func TestDamageRefused(t *testing.T) {
	const n = 6
	tests := []struct {
		name     string
		damage   func(t *testing.T, seg string, offs []int64) int64 // returns the offset
		sentinel error
		repair   bool // Repair opens it, keeping the records before the offset
	}{
		{"bit flip in a middle payload", func(t *testing.T, seg string, offs []int64) int64 {
			flipByte(t, seg, offs[2]+recHeaderSize+30)
			return offs[2]
		}, ErrCorrupt, true},
		{"bit flip in a middle header", func(t *testing.T, seg string, offs []int64) int64 {
			flipByte(t, seg, offs[3]+9)
			return offs[3]
		}, ErrCorrupt, true},
		{"bit flip in the last record", func(t *testing.T, seg string, offs []int64) int64 {
			flipByte(t, seg, offs[n-1]+recHeaderSize+30)
			return offs[n-1]
		}, ErrCorrupt, true},
		{"future record version", func(t *testing.T, seg string, offs []int64) int64 {
			reframe(t, seg, 2, func(_, ver *uint8, _ *[]byte) { *ver = batchVersion + 1 })
			return offs[2]
		}, ErrVersion, false},
		{"unknown record type", func(t *testing.T, seg string, offs []int64) int64 {
			reframe(t, seg, 4, func(typ, _ *uint8, _ *[]byte) { *typ = 77 })
			return offs[4]
		}, ErrVersion, false},
		{"unknown entry kind", func(t *testing.T, seg string, offs []int64) int64 {
			reframe(t, seg, 1, func(_, _ *uint8, p *[]byte) { (*p)[1] = maxKind + 1 })
			return offs[1]
		}, ErrCorrupt, true},
		// A segment is named only once its header is durable, so a short
		// header means records were lost, not a torn creation.
		{"log emptied", func(t *testing.T, seg string, offs []int64) int64 {
			os.Truncate(seg, 0)
			return 0
		}, ErrCorrupt, true},
		{"log cut inside its header", func(t *testing.T, seg string, offs []int64) int64 {
			os.Truncate(seg, segHeaderSize-3)
			return 0
		}, ErrCorrupt, true},
		{"future segment version", func(t *testing.T, seg string, offs []int64) int64 {
			b := mustRead(t, seg)
			h, _ := parseSegHeader(b)
			h.version = walVersion + 1
			copy(b, h.append(nil))
			os.WriteFile(seg, b, 0o600)
			return 0
		}, ErrVersion, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, seg, offs := numbered(t, n, 1500)
			off := tt.damage(t, seg, offs)
			damaged := mustRead(t, seg)
			_, err := Open(context.Background(), dir, Options{Logger: testLogger(t)})
			var fe *FileError
			if !errors.Is(err, tt.sentinel) || !errors.As(err, &fe) {
				t.Fatalf("Open = %v, want a FileError wrapping %v", err, tt.sentinel)
			}
			if fe.Path != seg || fe.Offset != off {
				t.Errorf("error names %s at %d, want %s at %d", fe.Path, fe.Offset, seg, off)
			}
			if !bytes.Equal(mustRead(t, seg), damaged) {
				t.Errorf("a refused Open changed the segment")
			}

			logs := &logRecorder{}
			s, err := Open(context.Background(), dir, Options{Repair: true, Logger: slog.New(logs)})
			if !tt.repair {
				if err == nil {
					s.Close()
					t.Fatalf("Repair opened data it must not touch")
				}
				return
			}
			if err != nil {
				t.Fatalf("Open with Repair: %v", err)
			}
			defer s.Close()
			want := max(recordIndex(offs, off), 0)
			if got := len(s.Clients()); got != want {
				t.Errorf("after repair: %d clients, want the %d before the damage", got, want)
			}
			if len(logs.matching("WARN", "repair", seg, fmt.Sprintf("offset=%d", off))) != 1 {
				t.Errorf("want one repair warning naming the file and offset, got %q", logs.recs)
			}
			copies, _ := filepath.Glob(filepath.Join(dir, damagedDir, "*"))
			if len(copies) != 1 || !bytes.Equal(mustRead(t, copies[0]), damaged) {
				t.Errorf("want the damaged segment copied aside, got %v", copies)
			}
		})
	}
}

func recordIndex(offs []int64, off int64) int {
	for i, o := range offs {
		if o == off {
			return i
		}
	}
	return -1
}

func TestRepairSetsAsideLaterSegments(t *testing.T) {
	opts := Options{SegmentSize: 600}
	s, dir := openTest(t, opts)
	putClients(t, s, "r", 10)
	s.Close()
	segs := listing(t, dir).segments
	if len(segs) < 4 {
		t.Fatalf("want several segments, got %v", segs)
	}
	// A torn write in a segment that is not the last is not a torn tail.
	first := filepath.Join(dir, segmentName(segs[0]))
	b := mustRead(t, first)
	os.WriteFile(first, b[:len(b)-10], 0o600)

	_, err := Open(context.Background(), dir, opts)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Path != first {
		t.Fatalf("Open = %v, want a refusal naming %s", err, first)
	}
	opts.Repair = true
	s = openDir(t, dir, opts)
	if got, want := len(s.Clients()), int(segs[1]-2); got != want {
		t.Errorf("after repair: %d clients, want %d", got, want)
	}
	if diff := cmp.Diff([]uint64{segs[0]}, listing(t, dir).segments[:1]); diff != "" {
		t.Errorf("segments after repair (-want +got):\n%s", diff)
	}
	aside, _ := os.ReadDir(filepath.Join(dir, damagedDir))
	if len(aside) != len(segs) { // a copy of the first, the later ones moved
		t.Errorf("damaged/ holds %d files, want %d", len(aside), len(segs))
	}
}

// TestRepairStraySegment puts a segment whose header names another
// sequence than its file name after the log. The repair sets it aside and
// the log goes on from where it really ended: writes after the repair
// survive the next ordinary start.
func TestRepairStraySegment(t *testing.T) {
	opts := Options{SnapshotRecords: 3}
	s, dir := openTest(t, opts)
	putClients(t, s, "b", 6)
	// A second run without snapshots: the log goes on past the newest one.
	s = reopen(t, s, dir, Options{SnapshotRecords: -1, SnapshotBytes: -1})
	putClients(t, s, "c", 6)
	s.Close()
	stray := filepath.Join(dir, segmentName(0xff))
	h := segHeader{version: walVersion, firstSeq: 1}
	if err := os.WriteFile(stray, h.append(nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), dir, opts); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want a refusal of the stray segment", err)
	}
	repairOpts := opts
	repairOpts.Repair = true
	s, err := Open(context.Background(), dir, repairOpts)
	if err != nil {
		t.Fatalf("Open with Repair: %v", err)
	}
	putClients(t, s, "a", 7)
	survivesReopen(t, s, dir, opts)
}

// TestRepairPassesOverCoveredDamage damages a log record that the snapshot
// covers, in the segment that also holds the records after the snapshot.
// Open refuses; a repair passes over the damaged record instead of cutting
// the log there, so nothing acknowledged is lost, and the start after it is
// an ordinary one with a clean Verify.
func TestRepairPassesOverCoveredDamage(t *testing.T) {
	tests := []struct {
		name   string
		record int   // the record damaged (the snapshot's last is 10)
		at     int64 // offset of the damage inside it
		first  int   // first sequence the repair says it passed over
	}{
		{"payload", 4, recHeaderSize + 3, 4},
		{"stored chained checksum", 4, 21, 4},
		{"header", 4, 2, 4},
		{"stored checksum of the record before the snapshot's last", 9, 21, 9},
		{"the snapshot's last record", 10, recHeaderSize + 3, 10},
		{"the snapshot's last header", 10, 9, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{SnapshotRecords: -1, SnapshotBytes: -1}
			s, dir := openTest(t, opts)
			putClients(t, s, "p", 10)
			snapshot(t, s)
			putClients(t, s, "q", 5)
			want := stateOf(s)
			s.Close()
			seg := filepath.Join(dir, segmentName(1))
			offs := recordOffsets(t, mustRead(t, seg))
			off := offs[tt.record-1]
			flipByte(t, seg, off+tt.at)

			_, err := Open(context.Background(), dir, opts)
			var fe *FileError
			if !errors.As(err, &fe) || fe.Path != seg || fe.Offset < off {
				t.Fatalf("Open = %v, want a refusal naming %s at %d or after", err, seg, off)
			}
			logs := &logRecorder{}
			s, err = Open(context.Background(), dir,
				Options{Repair: true, SnapshotRecords: -1, SnapshotBytes: -1,
					Logger: slog.New(logs)})
			if err != nil {
				t.Fatalf("Open with Repair: %v", err)
			}
			if diff := cmp.Diff(want, stateOf(s)); diff != "" {
				t.Errorf("state after the repair (-want +got):\n%s", diff)
			}
			if len(logs.matching("WARN", "passed over", fmt.Sprintf("first_seq=%d", tt.first))) != 1 {
				t.Errorf("the repair does not say what it passed over: %q", logs.recs)
			}
			s = survivesReopen(t, s, dir, opts)
			s.Close()
			if rep, err := Verify(dir); err != nil || len(rep.Problems) != 0 {
				t.Errorf("Verify after the repair: %v %+v", err, rep.Problems)
			}
			copies, _ := filepath.Glob(filepath.Join(dir, damagedDir, segmentName(1)+".*"))
			if len(copies) != 1 {
				t.Errorf("want a copy of the damaged segment aside, got %v", copies)
			}
		})
	}
}

// TestRepairDamageAcrossSnapshotEnd damages the snapshot's last record and
// the one after it. The repair cannot tell where the log after the snapshot
// resumes, so it does not claim to pass over covered records: it sets the
// damage aside as anywhere else, saying what it dropped.
func TestRepairDamageAcrossSnapshotEnd(t *testing.T) {
	opts := Options{SnapshotRecords: -1, SnapshotBytes: -1}
	s, dir := openTest(t, opts)
	putClients(t, s, "p", 10)
	snapshot(t, s)
	putClients(t, s, "q", 5)
	s.Close()
	seg := filepath.Join(dir, segmentName(1))
	offs := recordOffsets(t, mustRead(t, seg))
	flipByte(t, seg, offs[9]+recHeaderSize+3) // record 10's payload
	flipByte(t, seg, offs[10]+2)              // record 11's header

	logs := &logRecorder{}
	s, err := Open(context.Background(), dir, Options{Repair: true, SnapshotRecords: -1,
		SnapshotBytes: -1, Logger: slog.New(logs)})
	if err != nil {
		t.Fatalf("Open with Repair: %v", err)
	}
	defer s.Close()
	if got := logs.matching("passed over"); len(got) != 0 {
		t.Errorf("the repair claims to have kept what follows: %q", got)
	}
	dropped := logs.matching("WARN", "set aside damaged log data", fmt.Sprint("offset=", offs[9]))
	if len(dropped) != 1 {
		t.Errorf("the repair does not say what it dropped: %q", logs.recs)
	}
	if s.Client("p9") == nil {
		t.Error("the snapshot's records are missing")
	}
}
