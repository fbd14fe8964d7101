package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func joinDir(dir, name string) string { return filepath.Join(dir, name) }

// appendLocked frames payload as the next record and writes it to the active
// segment, rolling to a new segment first when the record would take the
// active one past Options.SegmentSize. It returns the position after it.
func (s *Store) appendLocked(payload []byte) (logPos, error) {
	size := int64(recordSize(len(payload)))
	if s.seg.size > segHeaderSize && s.seg.size+size > s.opts.SegmentSize {
		if err := s.rotateLocked(); err != nil {
			return logPos{}, err
		}
	}
	seq := s.appended.seq + 1
	rec, crc := appendRecord(make([]byte, 0, size), recBatch, batchVersion, seq,
		s.appended.crc, payload)
	if _, err := s.seg.f.Write(rec); err != nil {
		return logPos{}, fmt.Errorf("appending record %d to %s: %w", seq, s.seg.name, err)
	}
	s.seg.size += size
	s.sinceSnap.bytes += size
	s.sinceSnap.records++
	return logPos{seq: seq, crc: crc, seg: s.seg.name, off: s.seg.size}, nil
}

// rotateLocked makes the active segment durable and starts a new one. The
// old segment is fsynced here, not by the syncer, so that only the newest
// segment can ever end in a torn write. The syncer closes the old file.
func (s *Store) rotateLocked() error {
	start := time.Now()
	err := s.seg.f.Sync()
	s.fsynced(time.Since(start))
	if err != nil {
		return &fsyncError{fmt.Errorf("fsync %s: %w", s.seg.name, err)}
	}
	seg, err := s.createSegment(s.appended.seq+1, s.appended.crc)
	if err != nil {
		return err
	}
	s.retired = append(s.retired, s.seg.f)
	s.seg = seg
	return nil
}

// createSegment creates the segment file whose first record will be
// firstSeq, writes its header and makes it durable, including its directory
// entry.
func (s *Store) createSegment(firstSeq uint64, prevCRC uint32) (*segment, error) {
	name := segmentName(firstSeq)
	path := joinDir(s.dir, name)
	f, err := s.fs.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, filePerm)
	if err != nil {
		return nil, fmt.Errorf("creating segment %s: %w", name, err)
	}
	h := segHeader{version: walVersion, firstSeq: firstSeq, prevCRC: prevCRC}
	_, err = f.Write(h.append(nil))
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = s.fs.SyncDir(s.dir)
	}
	if err != nil {
		f.Close()
		s.fs.Remove(path)
		return nil, fmt.Errorf("creating segment %s: %w", name, err)
	}
	return &segment{name: name, f: f, size: segHeaderSize, firstSeq: firstSeq}, nil
}

// openSegmentAt opens an existing segment for appending, cutting it to size
// (dropping a torn or failed tail) and making that durable.
func (s *Store) openSegmentAt(name string, firstSeq uint64, size int64) (*segment, error) {
	f, err := s.fs.OpenFile(joinDir(s.dir, name), os.O_WRONLY|os.O_APPEND, filePerm)
	if err != nil {
		return nil, fmt.Errorf("opening segment %s: %w", name, err)
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("truncating segment %s to %d bytes: %w", name, size, err)
	}
	return &segment{name: name, f: f, size: size, firstSeq: firstSeq}, nil
}

// repairTailLocked brings the log back to the durable position after a failed
// append or fsync: segments begun after it are removed and the segment
// holding it is cut to it, so that records that failed can never be replayed.
// Nothing is pending when it runs.
func (s *Store) repairTailLocked() error {
	for _, f := range s.retired {
		f.Close()
	}
	s.retired = nil
	if s.seg != nil {
		s.seg.f.Close()
		s.seg = nil
	}
	l, err := listDir(s.fs, s.dir)
	if err != nil {
		return err
	}
	var errs []error
	durFirst, _ := parseSeqName(s.durable.seg, walPrefix, walSuffix)
	for _, first := range l.segments {
		if first > durFirst {
			err := s.fs.Remove(joinDir(s.dir, segmentName(first)))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("removing failed segments: %w", err)
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("syncing %s: %w", s.dir, err)
	}
	seg, err := s.openSegmentAt(s.durable.seg, durFirst, s.durable.off)
	if err != nil {
		return err
	}
	s.seg = seg
	s.appended = s.durable
	return nil
}

// fsyncError marks a failed fsync: what was written before it is uncertain.
type fsyncError struct{ error }

func (e *fsyncError) Unwrap() error { return e.error }
