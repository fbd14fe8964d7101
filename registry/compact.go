package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// snapshotRetry is how long the store waits after a failed automatic
// snapshot before trying again.
const snapshotRetry = time.Minute

// Snapshot writes a snapshot of the durable state, then removes the
// snapshots beyond Options.KeepSnapshots and the log segments that only hold
// records older than the oldest snapshot kept, and rebuilds the in-memory
// base from the state written (see the package documentation). Readers and
// writers go on while it runs. It does nothing when no write happened since
// the last snapshot, and returns ErrClosed once Close was called. It must not
// be called from an Update function.
func (s *Store) Snapshot(ctx context.Context) error {
	if s.readOnly {
		return ErrReadOnly
	}
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	return s.snapshotAndRebase(ctx)
}

// snapshotAndRebase writes a snapshot, then rebuilds the base from it. A
// failed rebuild leaves the old base, which stays correct: it is logged, not
// returned. It holds snapMu.
func (s *Store) snapshotAndRebase(ctx context.Context) error {
	w, err := s.snapshot(ctx)
	if err != nil || w.tx == nil {
		return err
	}
	if err := s.rebase(w); err != nil && !errors.Is(err, errSnapshotStopped) {
		s.log.Warn("could not rebuild the base from the snapshot; keeping the old one",
			"err", err)
	}
	return nil
}

// written is the state a snapshot was written from and, when a rebase is to
// follow, the base built from its records on the way.
type written struct {
	layers
	next *base
}

// snapshot writes a snapshot of the durable state and returns the state
// written, or a zero written when nothing was written since the last one or
// no rebase can follow. Otherwise changes made since that state are being
// tracked for rebase.
func (s *Store) snapshot(ctx context.Context) (w written, err error) {
	start := time.Now()
	s.wmu.Lock()
	if s.closed {
		// The directory lock may be gone: another process may own the files.
		s.wmu.Unlock()
		return written{}, ErrClosed
	}
	s.smu.Lock()
	for len(s.pending) > 0 {
		s.drained.Wait() // so that the durable state is the newest, for rebase
	}
	db, pos, counted := s.durableDB, s.durable, s.sinceSnap
	st := layers{base: s.base, tx: db.Txn(false)}
	s.sinceSnap = snapCounter{}
	tracking := s.broken == nil
	if tracking {
		s.tracked = trackedChanges{}
	}
	s.smu.Unlock()
	s.wmu.Unlock()
	if pos.seq == s.lastSnap && s.haveSnap {
		s.stopTracking()
		return written{}, nil
	}
	defer func() {
		if err != nil {
			s.stopTracking()
			s.smu.Lock()
			s.sinceSnap.bytes += counted.bytes
			s.sinceSnap.records += counted.records
			s.snapRetryAt = time.Now().Add(snapshotRetry)
			s.smu.Unlock()
		}
		if s.opts.OnSnapshot != nil {
			s.opts.OnSnapshot(time.Since(start), err)
		}
	}()

	done, release := s.stopOn(ctx)
	defer release()
	var bb *baseBuilder
	var each func(string, any) error
	if tracking {
		bb = newBaseBuilder()
		each = bb.add
	}
	n, err := s.writeSnapshot(st, snapInfo{seq: pos.seq, crc: pos.crc}, done, each)
	var next *base
	if bb != nil {
		next = bb.finish()
	}
	if err != nil {
		return written{}, fmt.Errorf("writing snapshot at sequence %d: %w", pos.seq, err)
	}
	s.lastSnap, s.haveSnap = pos.seq, true
	s.log.Info("snapshot written", "seq", pos.seq, "records", n,
		"duration", time.Since(start).Round(time.Millisecond))
	if err := s.compactFiles(); err != nil {
		return written{}, fmt.Errorf("removing old snapshots and segments: %w", err)
	}
	if !tracking {
		return written{}, nil
	}
	return written{layers: st, next: next}, nil
}

// stopOn returns a channel closed when ctx ends or the store closes, and a
// function to call once it is no longer needed.
func (s *Store) stopOn(ctx context.Context) (<-chan struct{}, func()) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-s.bgStop:
		case <-stop:
			return
		}
		close(done)
	}()
	return done, func() { close(stop) }
}

// writeSnapshot writes st as the snapshot covering info: to a temporary file
// in the data directory, fsynced, renamed into place, then the directory
// fsynced. A failure removes the temporary file.
func (s *Store) writeSnapshot(st layers, info snapInfo, done <-chan struct{},
	each func(string, any) error) (
	n int, err error) {
	name := snapshotName(info.seq)
	final, tmp := joinDir(s.dir, name), joinDir(s.dir, name+tmpSuffix)
	f, err := s.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			s.fs.Remove(tmp)
		}
	}()
	n, err = writeSnapshotTo(f, st, info, done, each)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	// A file of that name was not loaded, or the snapshot would have been
	// skipped as unchanged: keep it aside rather than replace it.
	if old, err := s.fs.OpenFile(final, os.O_RDONLY, 0); err == nil {
		old.Close()
		dst, err := moveAside(s.fs, s.dir, snapshotName(info.seq))
		if err != nil {
			return 0, err
		}
		s.log.Warn("moved aside a snapshot file in the way of a new one", "file", final,
			"to", dst)
	}
	if err := s.fs.Rename(tmp, final); err != nil {
		return 0, err
	}
	return n, s.fs.SyncDir(s.dir)
}

// compactFiles removes the snapshots beyond Options.KeepSnapshots, then the
// segments all of whose records the oldest kept snapshot covers. It runs
// only once the newest snapshot is durable, so the log's new lower bound is
// on disk before anything below it goes.
func (s *Store) compactFiles() error {
	l, err := listDir(s.fs, s.dir)
	if err != nil {
		return err
	}
	if len(l.snapshots) == 0 {
		return nil
	}
	var errs []error
	remove := func(name string) {
		if err := s.fs.Remove(joinDir(s.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	keep := l.snapshots[max(0, len(l.snapshots)-s.opts.KeepSnapshots):]
	for _, seq := range l.snapshots[:len(l.snapshots)-len(keep)] {
		remove(snapshotName(seq))
	}
	oldest := keep[0]
	for i := 0; i+1 < len(l.segments); i++ {
		if l.segments[i+1] <= oldest+1 {
			remove(segmentName(l.segments[i]))
		}
	}
	errs = append(errs, s.fs.SyncDir(s.dir))
	return errors.Join(errs...)
}

// maybeSnapshotLocked wakes the snapshotter when enough log has been written
// since the last snapshot.
func (s *Store) maybeSnapshotLocked() {
	c, o := s.sinceSnap, s.opts
	due := (o.SnapshotBytes > 0 && c.bytes >= o.SnapshotBytes) ||
		(o.SnapshotRecords > 0 && c.records >= o.SnapshotRecords)
	if due && time.Now().After(s.snapRetryAt) {
		select {
		case s.snapKick <- struct{}{}:
		default:
		}
	}
}

// startBackground starts the snapshotter and, if configured, housekeeping.
func (s *Store) startBackground() {
	ctx, cancel := context.WithCancel(context.Background())
	s.bg.Go(func() {
		<-s.bgStop
		cancel()
	})
	s.bg.Go(func() {
		for {
			select {
			case <-s.bgStop:
				return
			case <-s.snapKick:
			}
			s.snapMu.Lock()
			err := s.snapshotAndRebase(ctx)
			s.snapMu.Unlock()
			if err != nil && !errors.Is(err, errSnapshotStopped) && !errors.Is(err, ErrClosed) {
				s.log.Warn("automatic snapshot failed; will retry", "err", err,
					"retry_in", snapshotRetry)
			}
		}
	})
	if s.opts.HousekeepInterval > 0 {
		s.bg.Go(func() { s.housekeepLoop(ctx) })
	}
	if len(s.fallbackLog) > 0 {
		s.bg.Go(func() { s.checkFallbackLog(s.fallbackLog) })
	}
}
