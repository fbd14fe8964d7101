package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

func joinDir(dir, name string) string { return filepath.Join(dir, name) }

// chunk is log data queued for one segment. A chunk with newSeg starts the
// segment beginning at firstSeq.
type chunk struct {
	newSeg   bool
	firstSeq uint64
	prevCRC  uint32
	data     []byte
}

// queueLocked frames payload as the record after s.appended and queues it,
// starting a new segment first when the record would take the current one
// past Options.SegmentSize. It returns the position after the record; it
// does not move s.appended.
func (s *Store) queueLocked(payload []byte) logPos {
	size := int64(recordSize(len(payload)))
	seq := s.appended.seq + 1
	segName := s.appended.seg
	if s.logSize > segHeaderSize && s.logSize+size > s.opts.SegmentSize {
		s.out = append(s.out, chunk{newSeg: true, firstSeq: seq, prevCRC: s.appended.crc})
		segName, s.logSize = segmentName(seq), segHeaderSize
	}
	if len(s.out) == 0 {
		s.out = append(s.out, chunk{data: s.spare})
		s.spare = nil
	}
	if c := &s.out[len(s.out)-1]; cap(c.data)-len(c.data) < int(size) {
		// Grow ahead of the records to come, not by one record at a time.
		c.data = slices.Grow(c.data, max(int(size), 2*len(c.data), 4096))
	}
	c := &s.out[len(s.out)-1]
	var crc uint32
	c.data, crc = appendRecord(c.data, recBatch, batchVersion, seq, s.appended.crc, payload)
	s.logSize += size
	s.sinceSnap.bytes += size
	s.sinceSnap.records++
	return logPos{seq: seq, crc: crc, seg: segName, off: s.logSize}
}

// flush writes queued chunks to the log and fsyncs it. Only the syncer calls
// it (or a writer, with Options.NoGroupCommit, when the syncer is idle). A
// new segment is begun only after the old one is fsynced, so that only the
// newest segment can ever end in a torn write.
func (s *Store) flush(out []chunk) error {
	for _, c := range out {
		if c.newSeg {
			if err := s.syncSegment(); err != nil {
				return err
			}
			seg, err := s.createSegment(c.firstSeq, c.prevCRC)
			if err != nil {
				return err
			}
			s.seg.f.Close()
			s.seg = seg
		}
		if len(c.data) == 0 {
			continue
		}
		if _, err := s.seg.f.Write(c.data); err != nil {
			return fmt.Errorf("appending to %s: %w", s.seg.name, err)
		}
		s.seg.size += int64(len(c.data))
	}
	return s.syncSegment()
}

func (s *Store) syncSegment() error {
	start := time.Now()
	err := s.seg.f.Sync()
	s.fsynced(time.Since(start))
	if err != nil {
		return fmt.Errorf("fsync %s: %w", s.seg.name, err)
	}
	return nil
}

// createSegment creates the segment file whose first record will be
// firstSeq, with its header, and makes it durable, including its directory
// entry. The header is written to a temporary file that is fsynced before
// being renamed into place, so a crash never leaves a segment without its
// header: a segment whose header is cut short has been damaged since.
func (s *Store) createSegment(firstSeq uint64, prevCRC uint32) (*segment, error) {
	name := segmentName(firstSeq)
	path, tmp := joinDir(s.dir, name), joinDir(s.dir, name+tmpSuffix)
	if f, err := s.fs.OpenFile(path, os.O_RDONLY, 0); err == nil {
		f.Close()
		return nil, fmt.Errorf("creating segment %s: %w", name, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("creating segment %s: %w", name, err)
	}
	f, err := s.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, filePerm)
	if err != nil {
		return nil, fmt.Errorf("creating segment %s: %w", name, err)
	}
	h := segHeader{version: walVersion, firstSeq: firstSeq, prevCRC: prevCRC}
	_, err = f.Write(h.append(nil))
	if err == nil {
		err = f.Sync()
	}
	renamed := false
	if err == nil {
		err = s.fs.Rename(tmp, path)
		renamed = err == nil
	}
	if err == nil {
		err = s.fs.SyncDir(s.dir)
	}
	if err != nil {
		f.Close()
		s.fs.Remove(tmp)
		if renamed {
			s.fs.Remove(path)
		}
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
	s.out = nil
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
	s.appended, s.logSize = s.durable, s.durable.off
	return nil
}
