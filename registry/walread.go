package registry

import (
	"errors"
	"fmt"
)

// segScan is what scanSegment found in one segment.
type segScan struct {
	header  segHeader
	end     int64  // offset just past the last record that verified
	lastSeq uint64 // sequence of that record (header.firstSeq-1 if none)
	lastCRC uint32 // its chained checksum (header.prevCRC if none)
	records int
	damage  *damage // nil when the whole segment verified
	// skipped lists the records scanSegmentPast passed over.
	skipped []damage
}

// damage describes the first part of a file that did not verify.
type damage struct {
	off  int64
	torn bool // it looks like a write cut short by a crash (see tornSignature)
	err  error
	// seq is the record's sequence when its header verifies (so its
	// length, sequence and stored chained checksum frame the records after
	// it) and only its payload or chained checksum does not; in skipped, the
	// first sequence passed over.
	seq uint64
}

// recordVisitor is called with every record of a segment that verifies, in
// order. An error stops the scan and is reported as damage at the record.
// crc is the record's chained checksum.
type recordVisitor func(seq uint64, crc uint32, version uint8, payload []byte) error

// scanSegment reads the log segment data, whose name says it starts at
// wantFirst, verifying its header, the framing and chained checksum of every
// record and the sequence numbers. It stops at the first damage.
func scanSegment(data []byte, wantFirst uint64, visit recordVisitor) segScan {
	return scanSegmentPast(data, wantFirst, logPos{}, visit)
}

// scanSegmentPast is scanSegment for a repair, given the position snap of
// the loaded snapshot (zero: none). It passes over damage in the records
// snap covers instead of stopping there (listing it in skipped):
//   - a record before snap's last whose header verifies but whose payload
//     does not is skipped, and the records after it are checked against the
//     chained checksum its header stores (if that is wrong, the next record
//     does not verify);
//   - other damage up to snap's last record (a header, snap's last record
//     itself, a wrong stored checksum) is passed over by finding the record
//     after snap, at the 8-byte-aligned offsets that follow, as the one
//     whose header verifies and whose chained checksum follows from snap's;
//     if no such record follows, the rest of the segment is passed over,
//     and the next segment must chain from snap.
//
// Nothing is visited in what is passed over; snap holds all of it.
func scanSegmentPast(data []byte, wantFirst uint64, snap logPos, visit recordVisitor) segScan {
	var sc segScan
	h, err := parseSegHeader(data)
	off := int64(0)
	if err == nil && h.firstSeq != wantFirst {
		// Nothing of it counts, not even its header's position.
		off, err = 16, fmt.Errorf("segment header names sequence %d, file name %d: %w",
			h.firstSeq, wantFirst, ErrCorrupt)
	} else if err != nil {
		// Never torn: a segment gets its name only once its header is
		// durable (createSegment), so its records may have been lost.
		err = fmt.Errorf("segment header: %w", err)
	}
	if err != nil {
		d := damage{off: off, err: err}
		next := int64(len(data))
		if snap.seq > 0 && !errors.Is(err, ErrVersion) {
			next = findRecord(data, segHeaderSize, snap.seq+1, snap.crc)
		}
		if next == int64(len(data)) {
			sc.damage = &d
			return sc
		}
		// The record after the snapshot is here: the header is passed over.
		d.seq = wantFirst
		sc.resumeAfter(d, next, snap)
	} else {
		sc.header = h
		sc.end, sc.lastSeq, sc.lastCRC = segHeaderSize, h.firstSeq-1, h.prevCRC
	}
	for sc.end < int64(len(data)) {
		size, d := checkRecord(data, sc.end, sc.lastSeq+1, sc.lastCRC, visit)
		switch {
		case d == nil:
		case snap.seq == 0 || sc.lastSeq >= snap.seq || !errors.Is(d.err, ErrCorrupt) ||
			errors.Is(d.err, ErrVersion) || errors.Is(d.err, errSnapshotMismatch):
			sc.damage = d
			return sc
		case d.seq != 0 && d.seq < snap.seq:
			sc.skipped = append(sc.skipped, *d)
		default:
			next := findRecord(data, sc.end+8, snap.seq+1, snap.crc)
			if next == int64(len(data)) {
				if stop := endsWithSnapshot(data, sc.end, snap, d); stop != nil {
					sc.damage = stop
					return sc
				}
			}
			sc.resumeAfter(damage{off: sc.end, err: d.err, seq: sc.lastSeq + 1}, next, snap)
			continue
		}
		rh, _ := parseRecHeader(data[sc.end:])
		sc.end += int64(size)
		sc.lastSeq, sc.lastCRC = rh.seq, rh.crc
		sc.records++
	}
	return sc
}

// resumeAfter lists the damage d as passed over and goes on at next, the
// record after the snapshot snap (or the end of the segment).
func (sc *segScan) resumeAfter(d damage, next int64, snap logPos) {
	sc.skipped = append(sc.skipped, d)
	sc.end, sc.lastSeq, sc.lastCRC = next, snap.seq, snap.crc
}

// findRecord returns the offset of the record of sequence seq that chains
// from prev, among those at 8-byte-aligned offsets from from on whose
// header verifies, or the length of data if there is none. Of several (a
// stale copy written in the wrong place, say), it takes the one from which
// the chain runs furthest in data.
func findRecord(data []byte, from int64, seq uint64, prev uint32) int64 {
	best, bestRun := int64(len(data)), -1
	for off := (from + 7) &^ 7; off+recHeaderSize <= int64(len(data)); off += 8 {
		rh, ok := parseRecHeader(data[off:])
		if !ok || rh.seq != seq {
			continue
		}
		n := int(rh.length)
		fits := off+int64(recHeaderSize+n) <= int64(len(data))
		if !fits || recordCRC(prev, data[off:], n) != rh.crc {
			continue
		}
		if run := chainRun(data, off, seq, prev); run > bestRun {
			best, bestRun = off, run
		}
	}
	return best
}

// chainRun counts the records that verify one after the other from off,
// the first being seq chained from prev.
func chainRun(data []byte, off int64, seq uint64, prev uint32) int {
	run := 0
	for off < int64(len(data)) {
		size, d := checkRecord(data, off, seq, prev, nil)
		if d != nil {
			return run
		}
		rh, _ := parseRecHeader(data[off:])
		off, seq, prev, run = off+int64(size), seq+1, rh.crc, run+1
	}
	return run
}

// endsWithSnapshot decides, when no record chains from snap after damage d
// at off, whether the rest of the segment may be passed over: only if it
// ends with snap's last record (found by its header, storing snap's
// checksum) and zeros. It returns nil then; d if what follows is unknown
// (it may hold records after the snapshot); or damage wrapping
// errSnapshotMismatch if snap's last record stores another checksum: the
// snapshot is not this log's.
func endsWithSnapshot(data []byte, off int64, snap logPos, d *damage) *damage {
	for o := off; o+recHeaderSize <= int64(len(data)); o += 8 {
		rh, ok := parseRecHeader(data[o:])
		if !ok || rh.seq != snap.seq {
			continue
		}
		if rh.crc != snap.crc {
			return &damage{off: o, err: fmt.Errorf("record %d: %w: %w", snap.seq,
				errSnapshotMismatch, ErrCorrupt)}
		}
		end := o + int64(recordSize(int(rh.length)))
		if end <= int64(len(data)) && allZero(data[end:]) {
			return nil
		}
		return d
	}
	return d
}

// checkRecord verifies the record at off, which must be sequence want and
// chain to prev, and passes it to visit. It returns the framed size.
func checkRecord(data []byte, off int64, want uint64, prev uint32, visit recordVisitor) (
	int, *damage) {
	rest := data[off:]
	if len(rest) < recHeaderSize {
		return 0, &damage{off: off, torn: true,
			err: fmt.Errorf("record header cut short: %w", ErrCorrupt)}
	}
	rh, ok := parseRecHeader(rest)
	if !ok {
		if allZero(rest) {
			return 0, &damage{off: off, torn: true,
				err: fmt.Errorf("zero-filled tail: %w", ErrCorrupt)}
		}
		return 0, &damage{off: off, torn: tornSignature(rest[:recHeaderSize], off),
			err: fmt.Errorf("record header checksum mismatch: %w", ErrCorrupt)}
	}
	n := int(rh.length)
	size := recordSize(n)
	if len(rest) < size {
		return 0, &damage{off: off, torn: true, err: fmt.Errorf(
			"record of %d bytes cut short at %d bytes: %w", size, len(rest), ErrCorrupt)}
	}
	if recordCRC(prev, rest, n) != rh.crc {
		d := &damage{off: off, torn: tornSignature(rest[:recHeaderSize+n], off),
			err: fmt.Errorf("record %d checksum mismatch: %w", rh.seq, ErrCorrupt)}
		if rh.seq == want && allZero(rest[recHeaderSize+n:size]) {
			return size, &damage{off: d.off, torn: d.torn, err: d.err, seq: rh.seq}
		}
		return 0, d
	}
	if !allZero(rest[recHeaderSize+n : size]) {
		return 0, &damage{off: off, err: fmt.Errorf("record %d padding: %w", rh.seq, ErrCorrupt)}
	}
	if rh.seq != want {
		return 0, &damage{off: off, err: fmt.Errorf(
			"record sequence %d, want %d: %w", rh.seq, want, ErrCorrupt)}
	}
	if rh.typ != recBatch {
		return 0, &damage{off: off, err: fmt.Errorf(
			"record %d has unknown type %d: %w", rh.seq, rh.typ, ErrVersion)}
	}
	if rh.version == 0 || rh.version > batchVersion {
		return 0, &damage{off: off, err: fmt.Errorf("record %d: %w", rh.seq,
			&versionError{what: "batch record", version: int(rh.version), max: int(batchVersion)})}
	}
	if visit != nil {
		payload := rest[recHeaderSize : recHeaderSize+n]
		if err := visit(rh.seq, rh.crc, rh.version, payload); err != nil {
			return 0, &damage{off: off, err: fmt.Errorf("record %d: %w", rh.seq, err)}
		}
	}
	return size, nil
}
