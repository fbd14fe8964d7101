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
	if err != nil {
		// Never torn: a segment gets its name only once its header is
		// durable (createSegment), so its records may have been lost.
		sc.damage = &damage{off: 0, err: fmt.Errorf("segment header: %w", err)}
		return sc
	}
	if h.firstSeq != wantFirst {
		// Nothing of it counts, not even its header's position.
		sc.damage = &damage{off: 16, err: fmt.Errorf(
			"segment header names sequence %d, file name %d: %w", h.firstSeq, wantFirst, ErrCorrupt)}
		return sc
	}
	sc.header = h
	sc.end, sc.lastSeq, sc.lastCRC = segHeaderSize, h.firstSeq-1, h.prevCRC
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
			if next == int64(len(data)) && laterRecord(data, sc.end+8, snap.seq) {
				// The damage reaches past the snapshot: what it covers
				// cannot be told apart, so it is not passed over.
				sc.damage = d
				return sc
			}
			sc.skipped = append(sc.skipped, damage{off: sc.end, err: d.err, seq: sc.lastSeq + 1})
			sc.end, sc.lastSeq, sc.lastCRC = next, snap.seq, snap.crc
			continue
		}
		rh, _ := parseRecHeader(data[sc.end:])
		sc.end += int64(size)
		sc.lastSeq, sc.lastCRC = rh.seq, rh.crc
		sc.records++
	}
	return sc
}

// findRecord returns the first 8-byte-aligned offset from from on where a
// record of sequence seq begins whose header verifies and whose chained
// checksum follows from prev, or the length of data if there is none.
func findRecord(data []byte, from int64, seq uint64, prev uint32) int64 {
	for off := (from + 7) &^ 7; off+recHeaderSize <= int64(len(data)); off += 8 {
		rh, ok := parseRecHeader(data[off:])
		if !ok || rh.seq != seq {
			continue
		}
		n := int(rh.length)
		fits := off+int64(recHeaderSize+n) <= int64(len(data))
		if fits && recordCRC(prev, data[off:], n) == rh.crc {
			return off
		}
	}
	return int64(len(data))
}

// laterRecord reports whether a record header that verifies, of a sequence
// after seq, begins at an 8-byte-aligned offset from from on.
func laterRecord(data []byte, from int64, seq uint64) bool {
	for off := (from + 7) &^ 7; off+recHeaderSize <= int64(len(data)); off += 8 {
		if rh, ok := parseRecHeader(data[off:]); ok && rh.seq > seq {
			return true
		}
	}
	return false
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
