package registry

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
)

// snapTables is the order in which a snapshot holds the tables.
var snapTables = []*tableCodec{
	codecByTable[tableSigningKeys], codecByTable[tableUsers], codecByTable[tableClients],
	codecByTable[tableConsents], codecByTable[tableCodes], codecByTable[tableRefreshTokens],
	codecByTable[tableRevocations],
}

// snapHeader is the fixed header of a snapshot file.
type snapHeader struct {
	version uint32
	seq     uint64 // last log record the snapshot covers
	crc     uint32 // chained checksum of that record
}

func (h snapHeader) append(b []byte) []byte {
	start := len(b)
	b = append(b, snapMagic...)
	b = binary.LittleEndian.AppendUint32(b, h.version)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, h.seq)
	b = binary.LittleEndian.AppendUint32(b, h.crc)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

func parseSnapHeader(b []byte) (snapHeader, error) {
	le := binary.LittleEndian
	if len(b) < snapHeaderSize || string(b[:8]) != snapMagic ||
		crc32.Checksum(b[:28], castagnoli) != le.Uint32(b[28:]) {
		return snapHeader{}, fmt.Errorf("snapshot header: %w", ErrCorrupt)
	}
	h := snapHeader{version: le.Uint32(b[8:]), seq: le.Uint64(b[16:]), crc: le.Uint32(b[24:])}
	if h.version < oldestSnapVersion || h.version > snapVersion {
		return h, &versionError{what: "snapshot", version: int(h.version), max: snapVersion}
	}
	return h, nil
}

// snapWriter streams records to a snapshot file.
type snapWriter struct {
	w           io.Writer
	sum         hash.Hash32
	bw          *bufio.Writer
	body, frame []byte
	count       int
}

func newSnapWriter(w io.Writer, info snapInfo) *snapWriter {
	sum := crc32.New(castagnoli)
	sw := &snapWriter{w: w, sum: sum, bw: bufio.NewWriterSize(io.MultiWriter(w, sum), 1<<20)}
	sw.bw.Write(snapHeader{version: snapVersion, seq: info.seq, crc: info.crc}.append(nil))
	return sw
}

// add writes one record; records must come table by table in snapTables
// order, each table in primary-key order.
func (sw *snapWriter) add(c *tableCodec, obj any) error {
	sw.body = encodeBinary(sw.body[:0], obj)
	sw.frame = appendEntry(sw.frame[:0], c.put, sw.body)
	sw.count++
	_, err := sw.bw.Write(sw.frame)
	return err
}

// finish writes the trailer and the checksum of the whole file.
func (sw *snapWriter) finish() error {
	end := binary.AppendUvarint(nil, 0)
	end = binary.LittleEndian.AppendUint64(end, uint64(sw.count))
	sw.bw.Write(end)
	if err := sw.bw.Flush(); err != nil {
		return err
	}
	_, err := sw.w.Write(binary.LittleEndian.AppendUint32(nil, sw.sum.Sum32()))
	return err
}

// writeSnapshotTo streams the state st, which covers the log up to info, to
// w in the snapshot format, passing each record written to each as well
// unless it is nil. It returns the number of records written. It stops early
// when done is closed.
func writeSnapshotTo(w io.Writer, st layers, info snapInfo, done <-chan struct{},
	each func(table string, obj any) error) (int, error) {
	sw := newSnapWriter(w, info)
	for _, c := range snapTables {
		var err error
		st.scan(c.table, func(obj any) bool {
			if err = sw.add(c, obj); err != nil {
				return false
			}
			if each != nil {
				if err = each(c.table, obj); err != nil {
					return false
				}
			}
			if sw.count%65536 == 0 {
				select {
				case <-done:
					err = errSnapshotStopped
					return false
				default:
				}
			}
			return true
		})
		if err != nil {
			return 0, err
		}
	}
	return sw.count, sw.finish()
}

var errSnapshotStopped = errors.New("snapshot stopped: the store is closing")

// readSnapshot loads the snapshot at path into a new base. The base is only
// returned when the whole file verifies.
func readSnapshot(fsys FS, path string) (*base, snapInfo, error) {
	bb := newBaseBuilder()
	info, _, err := scanSnapshot(fsys, path, func(c *tableCodec, obj any) error {
		return bb.add(c.table, obj)
	})
	b := bb.finish()
	if err != nil {
		return nil, snapInfo{}, err
	}
	return b, info, nil
}

// snapBatch is a run of decoded snapshot records passed from the decoding
// goroutine to the consumer.
type snapBatch struct {
	codecs []*tableCodec
	objs   []any
}

// scanSnapshot reads the snapshot at path, passing every record to fn in
// file order, and verifies the whole file. Decoding runs in a goroutine of
// its own, overlapping fn. Errors name the file and offset.
func scanSnapshot(fsys FS, path string, fn func(*tableCodec, any) error) (snapInfo, int, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return snapInfo{}, 0, fmt.Errorf("opening snapshot: %w", err)
	}
	defer f.Close()

	batches := make(chan snapBatch, 4)
	stop := make(chan struct{})
	var (
		info  snapInfo
		count int
		rerr  error
	)
	go func() {
		defer close(batches)
		info, count, rerr = decodeSnapshot(f, path, batches, stop)
	}()
	var ferr error
	for b := range batches {
		for i, obj := range b.objs {
			if ferr == nil {
				ferr = fn(b.codecs[i], obj)
			}
		}
		if ferr != nil {
			select {
			case <-stop:
			default:
				close(stop)
			}
		}
	}
	// fn's error comes first: it is about a record already decoded, and once
	// it stopped the decoder, the decoder's own error only says so.
	if ferr != nil {
		return snapInfo{}, 0, &FileError{Path: path, Err: fmt.Errorf("%w: %w", ErrCorrupt, ferr)}
	}
	if rerr != nil {
		return snapInfo{}, 0, rerr
	}
	return info, count, nil
}

// snapReader is a buffered reader that keeps the CRC-32C of the bytes
// consumed so far (not of those merely buffered) and their file offset.
type snapReader struct {
	src  io.Reader
	buf  []byte
	r, w int // buf[r:w] is buffered and unread
	h    int // buf[h:r] is consumed but not yet in crc
	crc  uint32
	base int64 // file offset of buf[0]
}

func newSnapReader(src io.Reader) *snapReader {
	return &snapReader{src: src, buf: make([]byte, 1<<20)}
}

func (s *snapReader) offset() int64 { return s.base + int64(s.r) }

// sum returns the checksum of every byte consumed.
func (s *snapReader) sum() uint32 {
	s.crc = crc32.Update(s.crc, castagnoli, s.buf[s.h:s.r])
	s.h = s.r
	return s.crc
}

// fill makes at least n bytes available, unless the file ends first.
func (s *snapReader) fill(n int) error {
	if s.w-s.r >= n {
		return nil
	}
	s.sum()
	copy(s.buf, s.buf[s.r:s.w])
	s.base += int64(s.r)
	s.w -= s.r
	s.r, s.h = 0, 0
	if n > len(s.buf) {
		nb := make([]byte, n)
		copy(nb, s.buf[:s.w])
		s.buf = nb
	}
	for s.w < n {
		m, err := s.src.Read(s.buf[s.w:])
		s.w += m
		if err == io.EOF && s.w < n {
			return io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return err
		}
		if err == io.EOF {
			break
		}
	}
	return nil
}

func (s *snapReader) ReadByte() (byte, error) {
	if err := s.fill(1); err != nil {
		return 0, err
	}
	s.r++
	return s.buf[s.r-1], nil
}

// next consumes n bytes; the slice is valid until the next call.
func (s *snapReader) next(n int) ([]byte, error) {
	if err := s.fill(n); err != nil {
		return nil, err
	}
	s.r += n
	return s.buf[s.r-n : s.r], nil
}

// atEOF reports whether the file has no byte left.
func (s *snapReader) atEOF() bool { return s.fill(1) != nil }

func decodeSnapshot(f io.Reader, path string, out chan<- snapBatch, stop <-chan struct{}) (
	snapInfo, int, error) {
	sr := newSnapReader(f)
	fail := func(off int64, err error) (snapInfo, int, error) {
		if !errors.Is(err, ErrVersion) && !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return snapInfo{}, 0, &FileError{Path: path, Offset: off, Err: err}
	}
	errStopped := errors.New("stopped")
	send := func(b snapBatch) error {
		select {
		case out <- b:
			return nil
		case <-stop:
			return errStopped
		}
	}

	head, err := sr.next(snapHeaderSize)
	if err != nil {
		return fail(0, fmt.Errorf("snapshot header: %w", err))
	}
	h, err := parseSnapHeader(head)
	if err != nil {
		return fail(0, err)
	}

	const batchSize = 512
	var (
		batch snapBatch
		count int
	)
	for {
		off := sr.offset()
		kind, err := binary.ReadUvarint(sr)
		if err != nil {
			return fail(off, fmt.Errorf("entry kind: %w", err))
		}
		if kind == 0 {
			break
		}
		n, err := binary.ReadUvarint(sr)
		if err != nil || kind > uint64(maxKind) || codecByKind[kind].put != uint8(kind) ||
			n > maxPayload {
			return fail(off, fmt.Errorf("entry header (kind %d)", kind))
		}
		b, err := sr.next(int(n))
		if err != nil {
			return fail(off, fmt.Errorf("entry cut short: %w", err))
		}
		obj, err := decodeBinary(uint8(kind), string(b), h.version)
		if err != nil {
			return fail(off, err)
		}
		batch.codecs = append(batch.codecs, codecByKind[kind])
		batch.objs = append(batch.objs, obj)
		count++
		if len(batch.objs) == batchSize {
			if err := send(batch); err != nil {
				return snapInfo{}, 0, err
			}
			batch = snapBatch{
				codecs: make([]*tableCodec, 0, batchSize), objs: make([]any, 0, batchSize),
			}
		}
	}
	if len(batch.objs) > 0 {
		if err := send(batch); err != nil {
			return snapInfo{}, 0, err
		}
	}

	off := sr.offset()
	tail, err := sr.next(8)
	if err != nil {
		return fail(off, fmt.Errorf("snapshot trailer: %w", err))
	}
	if got := binary.LittleEndian.Uint64(tail); got != uint64(count) {
		return fail(off, fmt.Errorf("trailer counts %d records, file holds %d", got, count))
	}
	want := sr.sum()
	off = sr.offset()
	got, err := sr.next(4)
	if err != nil {
		return fail(off, fmt.Errorf("snapshot checksum: %w", err))
	}
	if binary.LittleEndian.Uint32(got) != want {
		return fail(off, fmt.Errorf("snapshot checksum mismatch"))
	}
	if !sr.atEOF() {
		return fail(off+4, fmt.Errorf("data after the snapshot checksum"))
	}
	return snapInfo{seq: h.seq, crc: h.crc}, count, nil
}
