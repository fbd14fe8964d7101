package registry

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// On-disk constants. The layout is documented in doc.go; change both together.
const (
	walMagic  = "MCPAZWAL"
	snapMagic = "MCPAZSNP"

	// walVersion is the segment header format version.
	walVersion = 1
	// snapVersion is the snapshot file format version.
	snapVersion = 2
	// oldestSnapVersion is the oldest snapshot format version still read.
	// Version 1 lacks Consent.Resource.
	oldestSnapVersion = 1

	segHeaderSize  = 32
	recHeaderSize  = 24
	snapHeaderSize = 32
	recAlign       = 8
	sectorSize     = 512
	minZeroRun     = 16

	// maxPayload bounds a record's payload, so that a corrupt length is
	// caught even when its header checksum collides.
	maxPayload = 64 << 20
)

// Record types of the write-ahead log. They are stable: a number is never
// reused for another meaning.
const (
	recBatch uint8 = 1 // one Update: a list of entries (codec.go)
)

// batchVersion is the newest batch payload version this code writes and reads.
const batchVersion uint8 = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segHeader is the fixed header at the start of every log segment.
type segHeader struct {
	version  uint32
	firstSeq uint64
	prevCRC  uint32 // chained checksum of record firstSeq-1 (0 before seq 1)
}

func (h segHeader) append(b []byte) []byte {
	start := len(b)
	b = append(b, walMagic...)
	b = binary.LittleEndian.AppendUint32(b, h.version)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, h.firstSeq)
	b = binary.LittleEndian.AppendUint32(b, h.prevCRC)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// parseSegHeader decodes a segment header. A header whose checksum fails is
// errBadHeader; a valid header of a newer format is a *versionError.
func parseSegHeader(b []byte) (segHeader, error) {
	if len(b) < segHeaderSize {
		return segHeader{}, errShortHeader
	}
	b = b[:segHeaderSize]
	le := binary.LittleEndian
	if string(b[:8]) != walMagic || crc32.Checksum(b[:28], castagnoli) != le.Uint32(b[28:]) {
		return segHeader{}, errBadHeader
	}
	h := segHeader{version: le.Uint32(b[8:]), firstSeq: le.Uint64(b[16:]), prevCRC: le.Uint32(b[24:])}
	if h.version != walVersion {
		return h, &versionError{what: "log segment", version: int(h.version), max: walVersion}
	}
	return h, nil
}

// recHeader is the fixed header of a log record.
type recHeader struct {
	length  uint32 // payload bytes
	typ     uint8
	version uint8
	seq     uint64
	crc     uint32 // chained checksum of header bytes 0..16 and the payload
}

// recordSize returns the framed size of a record with an n-byte payload.
func recordSize(n int) int { return (recHeaderSize + n + recAlign - 1) &^ (recAlign - 1) }

// appendRecord frames payload as the record seq of type typ and version,
// chaining its checksum to prev. It returns the extended buffer and the
// record's checksum, which the next record chains to.
func appendRecord(b []byte, typ, version uint8, seq uint64, prev uint32, payload []byte) (
	[]byte, uint32) {
	start := len(b)
	le := binary.LittleEndian
	b = le.AppendUint32(b, uint32(len(payload)))
	b = append(b, typ, version, 0, 0)
	b = le.AppendUint64(b, seq)
	b = le.AppendUint32(b, crc32.Checksum(b[start:start+16], castagnoli))
	crc := crc32.Update(prev, castagnoli, b[start:start+16])
	crc = crc32.Update(crc, castagnoli, payload)
	b = le.AppendUint32(b, crc)
	b = append(b, payload...)
	for (len(b)-start)%recAlign != 0 {
		b = append(b, 0)
	}
	return b, crc
}

// parseRecHeader decodes the record header at the start of b. It reports
// whether the header's own checksum verifies; it does not check the payload.
func parseRecHeader(b []byte) (recHeader, bool) {
	if len(b) < recHeaderSize {
		return recHeader{}, false
	}
	le := binary.LittleEndian
	if crc32.Checksum(b[:16], castagnoli) != le.Uint32(b[16:]) || b[6] != 0 || b[7] != 0 {
		return recHeader{}, false
	}
	h := recHeader{
		length: le.Uint32(b), typ: b[4], version: b[5], seq: le.Uint64(b[8:]), crc: le.Uint32(b[20:]),
	}
	return h, h.length <= maxPayload
}

// recordCRC computes the chained checksum of the record framed at b (header
// and payload) given the previous record's checksum.
func recordCRC(prev uint32, b []byte, n int) uint32 {
	crc := crc32.Update(prev, castagnoli, b[:16])
	return crc32.Update(crc, castagnoli, b[recHeaderSize:recHeaderSize+n])
}

// tornSignature reports whether b, the bytes of one record as found at file
// offset off (its header, and its payload unless only the header is
// checked), shows the marks of a write cut short by a crash: a part of it
// lying in one 512-byte disk sector that is all zero, and either at least
// minZeroRun bytes long, or the record's first or last part. A record's own
// zero bytes never make such a part: reserved header bytes and the high
// bytes of a small sequence number make shorter runs inside the header; a
// first part is at least 8 bytes (records are 8-byte aligned) and starts
// with the non-zero length; a last part ends with the payload's last byte,
// which closes a JSON body; and JSON has no zero bytes.
func tornSignature(b []byte, off int64) bool {
	for first := true; len(b) > 0; first = false {
		n := int(sectorSize - off%sectorSize)
		n = min(n, len(b))
		if (n >= minZeroRun || first || n == len(b)) && allZero(b[:n]) {
			return true
		}
		b, off = b[n:], off+int64(n)
	}
	return false
}

func allZero(b []byte) bool {
	return len(bytes.TrimLeft(b, "\x00")) == 0
}

// versionError reports a file or record written by a newer format.
type versionError struct {
	what    string
	version int
	max     int
}

func (e *versionError) Error() string {
	return fmt.Sprintf("%s format version %d is newer than this program reads (%d): "+
		"upgrade mcp-authz", e.what, e.version, e.max)
}

func (e *versionError) Unwrap() error { return ErrVersion }

var (
	errShortHeader = fmt.Errorf("header cut short: %w", ErrCorrupt)
	errBadHeader   = fmt.Errorf("header checksum mismatch: %w", ErrCorrupt)
)
