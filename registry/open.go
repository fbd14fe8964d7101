package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/hashicorp/go-memdb"
)

// snapInfo is what a snapshot covers: the log up to and including seq, whose
// chained checksum is crc.
type snapInfo struct {
	seq    uint64
	crc    uint32
	loaded bool // read from a snapshot file
}

// snapLoad is what loading the newest snapshot that verifies found.
type snapLoad struct {
	base *base
	info snapInfo
	// damaged names the newer snapshots that do not verify, and err says
	// why the newest of them does not. They are set aside only once the
	// rest of the directory has loaded, so a refused start changes nothing.
	damaged []string
	err     error
}

// load rehydrates the index from the data directory and opens the log for
// appending. It runs before the Store is shared.
func (s *Store) load(ctx context.Context) error {
	l, err := listDir(s.fs, s.dir)
	if err != nil {
		return err
	}
	if !s.readOnly {
		if err := s.removeTemps(l.temps); err != nil {
			return err
		}
	}

	var (
		sl   snapLoad
		from snapInfo
		r    replay
		// snapshots passed over on earlier rounds (damaged, or verifying
		// but not matching the log), newest first, and why the newest was
		passed    []string
		passedErr error
		snaps     = l.snapshots
		start     int
	)
	for {
		sl, err = s.loadNewestSnapshot(snaps)
		if err != nil {
			return err
		}
		if len(passed) > 0 {
			sl.damaged = append(slices.Clone(passed), sl.damaged...)
			sl.err = passedErr
		}
		s.base = sl.base
		s.lastSnap, s.haveSnap = sl.info.seq, sl.info.loaded
		start, from, err = s.replayStart(l, sl)
		if err != nil {
			return err
		}
		r = replay{s: s, db: newDB(), base: from}
		err = r.run(ctx, l.segments[start:])
		if !errors.Is(err, errSnapshotMismatch) || !sl.info.loaded {
			break
		}
		// The log is what was acknowledged; a snapshot is derived from it.
		name := snapshotName(sl.info.seq)
		s.log.Warn("snapshot does not match the log; trying an older one", "file", name,
			"err", err)
		s.passedOver = append(s.passedOver, Problem{File: joinDir(s.dir, name),
			Error: fmt.Sprintf("does not match the log: %v", err)})
		passed = append(sl.damaged, name)
		passedErr = cmp.Or(sl.err, error(&FileError{Path: joinDir(s.dir, name), Err: fmt.Errorf(
			"does not match the log (%v): %w", err, ErrCorrupt)}))
		snaps = snaps[:slices.Index(snaps, sl.info.seq)]
	}
	if err != nil {
		return err
	}
	healthy := len(sl.damaged) == 0 && !r.damaged
	if s.readOnly {
		s.head, s.durable = r.db, r.pos
		s.view.Store(&layers{base: s.base, tx: r.db.Txn(false)})
		return nil
	}
	s.fallbackLog = l.segments[:start]
	for _, name := range sl.damaged {
		dst, err := moveAside(s.fs, s.dir, name)
		if err != nil {
			return err
		}
		s.log.Warn("moved the damaged snapshot aside", "file", name, "to", dst)
	}
	// A repair that dropped records missing from the log, passed over
	// damaged ones or continued from a snapshot without its log snapshots
	// the state at once, so that the next start does not meet them again.
	s.repaired = from != sl.info || r.repaired || (len(l.segments) == 0 && sl.info.loaded)

	if err := s.openLog(r); err != nil {
		return err
	}
	// head is written to; the durable state is a snapshot of it that is not.
	s.head = r.db
	s.durableDB = r.db.Snapshot()
	s.appendedDB = s.durableDB
	s.view.Store(&layers{base: s.base, tx: s.durableDB.Txn(false)})
	s.sinceSnap = snapCounter{bytes: r.bytes, records: int(r.pos.seq - sl.info.seq)}
	s.log.Info("registry loaded", "snapshot_seq", sl.info.seq, "seq", r.pos.seq,
		"replayed", r.pos.seq-from.seq)
	if healthy {
		if err := s.compactFiles(); err != nil {
			s.log.Warn("removing old snapshots and segments", "err", err)
		}
	}
	return nil
}

// checkFallbackLog scans the segments before the one the replay started
// from, which only a fallback to an older snapshot would read, and warns
// about damage in them, so that it is not found only when it is needed. It
// runs in the background after Open and stops when the store closes.
func (s *Store) checkFallbackLog(segs []uint64) {
	for _, first := range segs {
		select {
		case <-s.bgStop:
			return
		default:
		}
		name := segmentName(first)
		data, err := readFile(s.fs, joinDir(s.dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue // compacted away meanwhile
		}
		if err != nil {
			s.log.Warn("could not check the log an older snapshot needs", "file", name,
				"err", err)
			continue
		}
		if sc := scanSegment(data, first, nil); sc.damage != nil {
			s.log.Warn("the log that only a fallback to an older snapshot needs is damaged; "+
				"the start did not need it (mcp-authz data verify reports it)",
				"file", joinDir(s.dir, name), "offset", sc.damage.off, "err", sc.damage.err)
		}
	}
}

func (s *Store) removeTemps(temps []string) error {
	for _, name := range temps {
		if err := s.fs.Remove(joinDir(s.dir, name)); err != nil {
			return fmt.Errorf("removing leftover %s: %w", name, err)
		}
		s.log.Info("removed the leftover of an interrupted snapshot or segment creation",
			"file", name)
	}
	if len(temps) > 0 {
		return s.fs.SyncDir(s.dir)
	}
	return nil
}

// loadNewestSnapshot loads the newest snapshot that verifies, warning about
// each newer one that does not.
func (s *Store) loadNewestSnapshot(snaps []uint64) (snapLoad, error) {
	var sl snapLoad
	for i := len(snaps) - 1; i >= 0; i-- {
		name := snapshotName(snaps[i])
		b, info, err := readSnapshot(s.fs, joinDir(s.dir, name))
		if err == nil && info.seq != snaps[i] {
			// Compaction goes by file names: a misnamed snapshot would
			// make it remove log that is still needed.
			err = &FileError{Path: joinDir(s.dir, name), Offset: 16, Err: fmt.Errorf(
				"snapshot header names sequence %d, file name %d: %w", info.seq, snaps[i],
				ErrCorrupt)}
		}
		if err == nil {
			if len(sl.damaged) > 0 {
				s.log.Warn("using an older snapshot", "file", name, "seq", info.seq)
			}
			info.loaded = true
			sl.base, sl.info = b, info
			return sl, nil
		}
		if errors.Is(err, ErrVersion) || !errors.Is(err, ErrCorrupt) {
			return snapLoad{}, err
		}
		s.log.Warn("snapshot does not verify; trying an older one", "file", name, "err", err)
		sl.damaged = append(sl.damaged, name)
		if sl.err == nil {
			sl.err = err
		}
	}
	// With no snapshot, the log must hold the whole history: replayStart
	// checks.
	return sl, nil
}

// replayStart returns the index of the first segment to replay and the
// position the replay starts from: after the snapshot loaded, the last
// segment starting at or before it. When records between the two are
// missing, it refuses; with Options.Repair it drops them, starting from the
// first segment of the log instead.
func (s *Store) replayStart(l dirListing, sl snapLoad) (int, snapInfo, error) {
	base := sl.info
	start := -1
	for i, first := range l.segments {
		if first <= base.seq+1 {
			start = i
		}
	}
	if start >= 0 {
		return start, base, nil
	}
	if len(l.segments) == 0 && base.loaded {
		// Compaction always keeps the last segment, so a snapshot is always
		// followed by some log.
		err := &FileError{Path: joinDir(s.dir, snapshotName(base.seq)), Err: fmt.Errorf(
			"no log segment: the log after the snapshot's record %d is missing: %w",
			base.seq, ErrCorrupt)}
		if !s.opts.Repair || s.readOnly {
			return 0, base, err
		}
		s.log.Warn("repair: the log is missing; continuing from the snapshot", "err", err)
		return 0, base, nil
	}
	if len(l.segments) == 0 {
		if sl.err == nil {
			return 0, base, nil
		}
		err := s.gapError(sl, 0, "there is no log")
		if !s.opts.Repair || s.readOnly {
			return 0, base, err
		}
		s.log.Warn("repair: no snapshot verifies and there is no log; starting empty",
			"err", err)
		return 0, base, nil
	}
	first := l.segments[0]
	err := s.gapError(sl, first, fmt.Sprintf("the log starts at sequence %d", first))
	if !s.opts.Repair || s.readOnly {
		return 0, base, err
	}
	s.log.Warn("repair: dropped the records missing from the log; keeping the log after them",
		"first_missing", base.seq+1, "last_missing", first-1, "err", err)
	return 0, s.segmentStart(first), nil
}

// gapError explains why the records after the snapshot loaded (if any) up
// to first-1 (0: all of them) are missing, naming the damaged snapshot that
// held them if there is one, else the first segment.
func (s *Store) gapError(sl snapLoad, first uint64, why string) error {
	next := "start with --repair to set the damaged snapshot aside and keep the log " +
		"after it (the records only it held are lost)"
	var fe *FileError
	switch {
	case sl.err != nil && !sl.info.loaded && errors.As(sl.err, &fe):
		return &FileError{Path: fe.Path, Offset: fe.Offset,
			Err: fmt.Errorf("%w; no snapshot verifies and %s: %s", fe.Err, why, next)}
	case sl.err != nil && !sl.info.loaded:
		return fmt.Errorf("no snapshot verifies and %s: %w; %s", why, sl.err, next)
	case sl.err != nil && errors.As(sl.err, &fe):
		return &FileError{Path: fe.Path, Offset: fe.Offset, Err: fmt.Errorf(
			"%w; the older snapshot covers the log up to record %d and %s: %s",
			fe.Err, sl.info.seq, why, next)}
	}
	return &FileError{Path: joinDir(s.dir, segmentName(first)), Err: fmt.Errorf(
		"log records %d to %d are missing: %w; start with --repair to drop them and keep "+
			"the log after them", sl.info.seq+1, first-1, ErrCorrupt)}
}

// segmentStart returns the position just before segment first, as its
// header records it.
func (s *Store) segmentStart(first uint64) snapInfo {
	from := snapInfo{seq: first - 1}
	f, err := s.fs.OpenFile(joinDir(s.dir, segmentName(first)), os.O_RDONLY, 0)
	if err != nil {
		return from // the replay reports the segment's damage
	}
	defer f.Close()
	head := make([]byte, segHeaderSize)
	if _, err := f.ReadAt(head, 0); err == nil {
		if h, err := parseSegHeader(head); err == nil && h.firstSeq == first {
			from.crc = h.prevCRC
		}
	}
	return from
}

// replay applies log segments to an index.
type replay struct {
	s    *Store
	db   *memdb.MemDB
	base snapInfo
	pos  logPos // after the last record replayed or verified
	seen bool   // a segment header has been read

	lastName    string // the last segment kept
	lastFirst   uint64
	lastRecords int // records in it
	bytes       int64
	damaged     bool
	// repaired is set when a repair passed over damaged records the
	// snapshot covers, or continued from a snapshot past the log's end.
	repaired bool
}

func (r *replay) run(ctx context.Context, segs []uint64) error {
	tx := r.db.Txn(true)
	defer tx.Abort()
	for i, first := range segs {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := segmentName(first)
		stop, err := r.segment(tx, name, first, i == len(segs)-1, segs[i+1:])
		if err != nil {
			return err
		}
		if stop {
			break
		}
	}
	tx.Commit()
	if r.pos.seq < r.base.seq && r.seen && !r.damaged && (!r.s.opts.Repair || r.s.readOnly) {
		// The log always holds the records a snapshot covers, or a segment
		// chaining from its last: it lost its end, or the snapshot was not
		// written from it. Nothing tells which; a repair keeps the snapshot.
		return &FileError{Path: joinDir(r.s.dir, r.lastName), Err: fmt.Errorf(
			"the log ends at record %d, before the last record the snapshot covers (%d): "+
				"the log lost its end or the snapshot is not this registry's; start with "+
				"--repair to continue from the snapshot: %w", r.pos.seq, r.base.seq, ErrCorrupt)}
	}
	if r.pos.seq < r.base.seq && r.seen {
		r.s.log.Warn("log ends before the snapshot; continuing from the snapshot",
			"log_seq", r.pos.seq, "snapshot_seq", r.base.seq)
		// The older snapshots lead into the log's missing end.
		r.repaired = !r.s.readOnly
	}
	if r.pos.seq < r.base.seq {
		r.pos = logPos{seq: r.base.seq, crc: r.base.crc}
		r.lastName = ""
	}
	return nil
}

// segment replays one segment. stop reports that later segments were set
// aside by a repair.
func (r *replay) segment(tx *memdb.Txn, name string, first uint64, last bool,
	later []uint64) (stop bool, err error) {
	path := joinDir(r.s.dir, name)
	data, err := readFile(r.s.fs, path)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	visit := func(seq uint64, crc uint32, _ uint8, payload []byte) error {
		if seq == r.base.seq && crc != r.base.crc {
			return fmt.Errorf("record %d: %w: %w", seq, errSnapshotMismatch, ErrCorrupt)
		}
		if seq <= r.base.seq {
			return nil
		}
		entries, err := decodeBatch(payload)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		for _, e := range entries {
			if err := apply(layers{base: r.s.base, tx: tx}, e); err != nil {
				return fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
		}
		return nil
	}
	var sc segScan
	if h, err := parseSegHeader(data); err == nil && h.firstSeq == first {
		sc.damage = r.checkChain(h)
	}
	if sc.damage == nil {
		sc = scanSegmentPast(data, first, r.passable(), visit)
	}
	if len(sc.skipped) > 0 {
		if err := r.passOver(name, sc.skipped); err != nil {
			return false, err
		}
	}
	if d := sc.damage; d != nil {
		if err := r.damage(name, data, sc, last, later); err != nil {
			return false, err
		}
		stop = !last
	}
	if sc.end >= segHeaderSize {
		r.pos, r.seen = logPos{seq: sc.lastSeq, crc: sc.lastCRC}, true
		r.lastName, r.lastFirst, r.lastRecords = name, first, sc.records
		r.bytes += sc.end
	}
	return stop, nil
}

// passable returns the position of the loaded snapshot when a repair may
// pass over damage in the log it covers (see scanSegmentPast), else zero.
func (r *replay) passable() logPos {
	if !r.s.opts.Repair || r.s.readOnly || !r.base.loaded || r.base.seq == 0 {
		return logPos{}
	}
	return logPos{seq: r.base.seq, crc: r.base.crc}
}

// passOver keeps a copy of segment name, whose records skipped are damaged
// but covered by the snapshot, and says so. Open then snapshots and sets
// aside what still leads through them.
func (r *replay) passOver(name string, skipped []damage) error {
	kept, err := copyAside(r.s.fs, r.s.dir, name)
	if err != nil {
		return err
	}
	var offs []int64
	for _, d := range skipped {
		offs = append(offs, d.off)
	}
	r.damaged, r.repaired = true, true
	r.s.log.Warn("repair: passed over damaged log records that the snapshot covers; "+
		"what follows them verifies and is kept", "file", joinDir(r.s.dir, name),
		"offsets", offs, "first_seq", skipped[0].seq, "last_seq", skipped[len(skipped)-1].seq,
		"snapshot_seq", r.base.seq, "copy", kept, "err", skipped[0].err)
	return nil
}

// checkChain verifies that segment sc continues the log replayed so far, or
// for the first segment, the snapshot (when it starts just after it).
func (r *replay) checkChain(h segHeader) *damage {
	want := r.pos
	if !r.seen {
		if r.base.seq > 0 && h.firstSeq <= r.base.seq {
			return nil // checked when the scan crosses r.base.seq
		}
		want = logPos{seq: r.base.seq, crc: r.base.crc}
	}
	switch {
	case h.firstSeq != want.seq+1:
		return &damage{off: 16, err: fmt.Errorf("segment starts at sequence %d, want %d: %w",
			h.firstSeq, want.seq+1, ErrCorrupt)}
	case h.prevCRC != want.crc && !r.seen && r.base.loaded:
		return &damage{off: 24, err: fmt.Errorf("segment header: %w: %w",
			errSnapshotMismatch, ErrCorrupt)}
	case h.prevCRC != want.crc:
		return &damage{off: 24, err: fmt.Errorf(
			"segment does not chain to the record before it: %w", ErrCorrupt)}
	}
	return nil
}

// errSnapshotMismatch marks a log whose record at a snapshot's sequence has
// another checksum than the snapshot says: one of them is not what the
// other was written with.
var errSnapshotMismatch = errors.New("the log does not match the snapshot's checksum")

// damage handles the damage found in segment name: a torn final write is cut
// off (after copying the file aside); other damage is refused, or with
// Options.Repair set aside with every later segment.
func (r *replay) damage(name string, data []byte, sc segScan, last bool, later []uint64) error {
	d := sc.damage
	path := joinDir(r.s.dir, name)
	if errors.Is(d.err, ErrVersion) || errors.Is(d.err, errSnapshotMismatch) {
		// Never cut the log to fit a snapshot: load tries an older one.
		return &FileError{Path: path, Offset: d.off, Err: d.err}
	}
	r.damaged = true
	// A record the snapshot covers was durable before the snapshot was
	// written: its damage is not a torn write, whatever it looks like.
	torn := d.torn && last && sc.lastSeq >= r.base.seq
	if torn && r.s.readOnly {
		r.s.log.Warn("the log ends in a torn record", "file", path, "offset", d.off, "err", d.err)
		return nil
	}
	if !torn && (!r.s.opts.Repair || r.s.readOnly) {
		return &FileError{Path: path, Offset: d.off,
			Err: fmt.Errorf("%w (a repair would set aside this and later log data)", d.err)}
	}
	kept, err := r.cut(name, d.off)
	if err != nil {
		return err
	}
	if torn {
		r.s.log.Warn("truncated a torn final log record", "file", path, "offset", d.off,
			"dropped_bytes", int64(len(data))-d.off, "copy", kept, "err", d.err)
		return nil
	}
	var moved []string
	for _, first := range later {
		dst, err := moveAside(r.s.fs, r.s.dir, segmentName(first))
		if err != nil {
			return err
		}
		moved = append(moved, dst)
	}
	r.s.log.Warn("repair: set aside damaged log data", "file", path, "offset", d.off,
		"dropped_bytes", int64(len(data))-d.off, "copy", kept,
		"later_segments_set_aside", moved, "err", d.err)
	return nil
}

// cut copies segment name aside, then truncates it to off, or removes it when
// its header is damaged. It returns the path of the copy.
func (r *replay) cut(name string, off int64) (string, error) {
	fs, path := r.s.fs, joinDir(r.s.dir, name)
	kept, err := copyAside(fs, r.s.dir, name)
	if err != nil {
		return "", err
	}
	if off < segHeaderSize {
		if err := fs.Remove(path); err != nil {
			return "", fmt.Errorf("removing %s: %w", path, err)
		}
		return kept, fs.SyncDir(r.s.dir)
	}
	f, err := fs.OpenFile(path, os.O_WRONLY, filePerm)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(off); err != nil {
		return "", fmt.Errorf("truncating %s to %d bytes: %w", path, off, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("syncing %s: %w", path, err)
	}
	return kept, nil
}

// openLog opens the segment the store appends to: the last segment when it
// holds no record yet, else a new one.
func (s *Store) openLog(r replay) error {
	var (
		seg *segment
		err error
	)
	if r.lastName != "" && r.lastRecords == 0 && r.lastFirst == r.pos.seq+1 {
		seg, err = s.openSegmentAt(r.lastName, r.lastFirst, segHeaderSize)
	} else {
		seg, err = s.createSegment(r.pos.seq+1, r.pos.crc)
	}
	if err != nil {
		return err
	}
	s.seg, s.logSize = seg, seg.size
	pos := r.pos
	pos.seg, pos.off = seg.name, seg.size
	s.appended, s.durable = pos, pos
	return nil
}
