package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-memdb"
)

// ErrNotFound is returned by writes that need an existing record.
var ErrNotFound = errors.New("not found")

// ErrUnavailable is wrapped by write errors caused by the disk (full,
// read-only, failing): the write was not made and may be retried later.
var ErrUnavailable = errors.New("registry unavailable for writes")

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("registry closed")

// ErrReadOnly is returned by Update and Snapshot on a Store opened with
// OpenReadOnly.
var ErrReadOnly = errors.New("registry opened read-only")

// ErrNoRegistry is wrapped by the error of OpenReadOnly, Verify, Dump and
// Compact when the directory does not exist or holds neither a snapshot nor
// a log segment, so that a mistyped path is not taken for an empty registry.
var ErrNoRegistry = errors.New("no registry there")

// Default option values.
const (
	DefaultSegmentSize     = 64 << 20
	DefaultSnapshotBytes   = 256 << 20
	DefaultSnapshotRecords = 1_000_000
	DefaultKeepSnapshots   = 2
)

// Options configures Open. The zero value is a good configuration.
type Options struct {
	// Logger receives the store's logs; nil means slog.Default().
	Logger *slog.Logger

	// FS is the filesystem to use; nil means OSFS.
	FS FS

	// SegmentSize is the size at which the log rolls to a new segment file;
	// 0 means DefaultSegmentSize.
	SegmentSize int64

	// SnapshotBytes and SnapshotRecords start a snapshot when the log written
	// since the last one reaches this many bytes or records; 0 means the
	// default, a negative value turns that trigger off.
	SnapshotBytes   int64
	SnapshotRecords int

	// KeepSnapshots is how many snapshots are kept; 0 means
	// DefaultKeepSnapshots. The log is kept from the oldest of them, so that
	// Open can fall back to it when the newest is damaged.
	KeepSnapshots int

	// NoGroupCommit makes every Update fsync the log on its own while it
	// holds the writer lock, instead of sharing fsyncs between concurrent
	// Updates. It exists to measure what group commit gains.
	NoGroupCommit bool

	// Repair makes Open set aside damaged log data (copying it into the
	// damaged/ subdirectory first) and keep what verifies, instead of
	// refusing to open.
	Repair bool

	// HousekeepInterval, when positive, runs Housekeep that often.
	HousekeepInterval time.Duration

	// OnFsync, if set, is called with the duration of every log fsync.
	OnFsync func(time.Duration)

	// OnSnapshot, if set, is called after every snapshot attempt with its
	// duration and outcome.
	OnSnapshot func(time.Duration, error)

	// Now returns the current time for housekeeping; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FS == nil {
		o.FS = OSFS{}
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.SnapshotBytes == 0 {
		o.SnapshotBytes = DefaultSnapshotBytes
	}
	if o.SnapshotRecords == 0 {
		o.SnapshotRecords = DefaultSnapshotRecords
	}
	if o.KeepSnapshots <= 0 {
		o.KeepSnapshots = DefaultKeepSnapshots
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Store is the registry: an in-memory index made durable on disk.
//
// Reads on the Store see the state as of the last durable write; they never
// do I/O and never wait for writers. See the package documentation for how
// writes are made durable.
type Store struct {
	opts Options
	log  *slog.Logger
	fs   FS
	dir  string
	lock io.Closer
	// readOnly loads a directory without changing it (OpenReadOnly).
	readOnly bool
	// fallbackLog lists the segments before the one the replay started
	// from; checkFallbackLog scans them in the background.
	fallbackLog []uint64
	// passedOver lists the snapshots load passed over although they verify
	// on their own, for Verify.
	passedOver []Problem
	// repaired is set when a repair dropped records the log lacked, passed
	// over damaged ones a snapshot covers, or continued from a snapshot past
	// the log's end or without a log: Open then writes a snapshot before it
	// returns and sets aside the older ones, since the log after them has a
	// gap or damage.
	repaired bool

	// wmu serialises writers; it is taken before smu. head is the newest
	// state, including writes whose log record is not durable yet; only
	// writers use it.
	wmu  sync.Mutex
	head *memdb.MemDB
	// base is the frozen state under every memdb state (head, appendedDB,
	// durableDB, view), which are deltas over it. A rebase replaces it,
	// holding wmu and smu, together with those states.
	base   *base
	closed bool
	// tracked holds the records changed since the state a snapshot is
	// written from, while a rebase may follow; nil otherwise.
	tracked trackedChanges

	// view is the newest durable state: the base and a memdb read
	// transaction over it. Both are immutable, so all readers share them.
	view atomic.Pointer[layers]

	// smu guards the log and the commit pipeline below.
	smu        sync.Mutex
	work       *sync.Cond // the syncer waits on it for pending commits
	drained    *sync.Cond // signalled when pending commits are settled
	seg        *segment   // the segment file; I/O on it is the syncer's
	out        []chunk    // records queued, not yet written
	spare      []byte     // a written chunk's buffer, for the next chunk
	logSize    int64      // size of the last segment once out is written
	appended   logPos     // end of the last queued record
	appendedDB *memdb.MemDB
	durable    logPos // end of the last durable record
	durableDB  *memdb.MemDB
	pending    []*commit // appended, waiting for an fsync, in sequence order
	broken     error     // set when the log tail must be repaired before appending
	rollback   bool      // head holds changes whose fsync failed
	epoch      uint64    // counts fsync failures
	failing    bool      // writes failed since the last durable write (logged once)
	stopping   bool
	sinceSnap  snapCounter

	syncerDone chan struct{}
	bg         sync.WaitGroup // snapshot and housekeeping goroutines
	bgStop     chan struct{}
	snapMu     sync.Mutex // one snapshot at a time
	snapKick   chan struct{}
	// Guarded by snapMu (set during load, before the Store is shared):
	lastSnap uint64 // sequence of the newest snapshot
	haveSnap bool
	// Guarded by smu:
	snapRetryAt time.Time

	// qmu guards the queue of Updates waiting to run. combining is set
	// while one of their callers runs them or is about to.
	qmu       sync.Mutex
	queue     []*request
	combining bool
}

// segment is an open log segment.
type segment struct {
	name     string
	f        File
	size     int64
	firstSeq uint64
}

// logPos is the position just after the log record seq.
type logPos struct {
	seq uint64
	crc uint32 // chained checksum of record seq
	seg string // segment holding it
	off int64  // offset in seg just past it
}

// commit is an appended record waiting for the fsync that covers it.
type commit struct {
	seq  uint64
	done chan error
}

type snapCounter struct {
	bytes   int64
	records int
}

// Open opens (creating if needed) the data directory dir, takes its lock and
// rehydrates the index from disk: the newest snapshot that verifies, then the
// log after it. See the package documentation for how damage is handled.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	s := &Store{
		opts:       opts,
		log:        opts.Logger.With("component", "registry", "dir", dir),
		fs:         opts.FS,
		dir:        dir,
		syncerDone: make(chan struct{}),
		bgStop:     make(chan struct{}),
		snapKick:   make(chan struct{}, 1),
	}
	s.work = sync.NewCond(&s.smu)
	s.drained = sync.NewCond(&s.smu)
	if err := s.fs.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("creating data directory %s: %w", dir, err)
	}
	lock, err := s.fs.Lock(joinDir(dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("opening registry %s: %w", dir, err)
	}
	s.lock = lock
	if err := s.load(ctx); err != nil {
		lock.Close()
		return nil, fmt.Errorf("opening registry %s: %w", dir, err)
	}
	go s.syncLoop()
	s.startBackground()
	if s.repaired {
		if err := s.snapshotAfterRepair(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("opening registry %s: snapshotting the repaired state: %w",
				dir, err)
		}
	}
	return s, nil
}

// snapshotAfterRepair snapshots the state a repair kept, then moves to
// damaged/ every older snapshot (the log after them has a gap or damaged
// records) and removes the segments the snapshot covers.
func (s *Store) snapshotAfterRepair(ctx context.Context) error {
	if err := s.Snapshot(ctx); err != nil {
		return err
	}
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	l, err := listDir(s.fs, s.dir)
	if err != nil {
		return err
	}
	for _, seq := range l.snapshots[:max(len(l.snapshots)-1, 0)] {
		dst, err := moveAside(s.fs, s.dir, snapshotName(seq))
		if err != nil {
			return err
		}
		s.log.Warn("repair: moved aside a snapshot the log no longer continues intact",
			"file", snapshotName(seq), "to", dst)
	}
	return s.compactFiles()
}

// OpenReadOnly loads the data directory dir without changing it and without
// taking its lock, so it works beside a running server: it sees the state
// made durable when it loads, and nothing after. A torn final record is left
// out with a warning; other damage fails as in Open, and nothing is
// repaired. Update and Snapshot return ErrReadOnly; Close does nothing.
func OpenReadOnly(ctx context.Context, dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	s := &Store{
		opts: opts, log: opts.Logger.With("component", "registry", "dir", dir),
		fs: opts.FS, dir: dir, readOnly: true,
	}
	if err := checkRegistryDir(s.fs, dir); err != nil {
		return nil, err
	}
	err := s.load(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		// A live store's compaction removed a file after the listing.
		s.passedOver = nil
		err = s.load(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("opening registry %s: %w", dir, err)
	}
	s.closed = true // nothing to flush or stop; Close has nothing to do
	return s, nil
}

// CheckDir returns an error wrapping ErrNoRegistry unless dir holds a
// snapshot or a log segment. It reads only the directory's listing, so a
// command can refuse a mistyped path before it does anything else.
func CheckDir(dir string) error { return checkRegistryDir(OSFS{}, dir) }

// checkRegistryDir is CheckDir on fsys.
func checkRegistryDir(fsys FS, dir string) error {
	l, err := listDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist: %w", dir, ErrNoRegistry)
	}
	if err != nil {
		return err
	}
	if len(l.segments) == 0 && len(l.snapshots) == 0 {
		return fmt.Errorf("%s holds no snapshot and no log segment: %w", dir, ErrNoRegistry)
	}
	return nil
}

// newDB returns an empty index. It is a memdb snapshot rather than the
// primary database: nothing watches the registry, and a non-primary memdb
// skips tracking the mutation channels of its radix trees.
func newDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		panic(fmt.Sprintf("registry: invalid schema: %v", err))
	}
	return db.Snapshot()
}

// Close waits for pending writes to become durable, stops background work,
// closes the log and releases the directory lock. Reads keep working on the
// last state.
func (s *Store) Close() error {
	s.wmu.Lock()
	if s.closed {
		s.wmu.Unlock()
		return nil
	}
	s.closed = true
	s.wmu.Unlock()

	close(s.bgStop)
	s.bg.Wait()
	s.snapMu.Lock() // wait for an on-demand snapshot
	defer s.snapMu.Unlock()

	s.smu.Lock()
	s.stopping = true
	s.work.Broadcast()
	s.smu.Unlock()
	<-s.syncerDone

	s.smu.Lock()
	defer s.smu.Unlock()
	var errs []error
	if s.broken != nil {
		// Cut records whose writes failed, so no later Open replays them.
		if err := s.repairTailLocked(); err != nil {
			s.log.Warn("could not cut the failed log tail; the next open checks it", "err", err)
		}
	}
	if s.seg != nil {
		errs = append(errs, s.seg.f.Close())
		s.seg = nil
	}
	errs = append(errs, s.lock.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("closing registry %s: %w", s.dir, err)
	}
	return nil
}

// Update runs fn in a write transaction. Its changes become visible and are
// durable on disk before Update returns nil; if fn returns an error nothing
// is written. fn may be called only once and must not block on I/O. It may
// run on another goroutine than Update's: a panic in fn is raised again by
// Update.
//
// Once fn has run and its record is in the log, Update waits for the fsync
// whatever ctx says: the outcome is then decided by the disk. An error
// caused by the disk wraps ErrUnavailable, and then nothing was written.
func (s *Store) Update(ctx context.Context, fn func(tx *Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.readOnly {
		return ErrReadOnly
	}
	r := &request{fn: fn, wake: make(chan struct{}, 1)}
	s.qmu.Lock()
	s.queue = append(s.queue, r)
	lead := !s.combining
	s.combining = true
	s.qmu.Unlock()
	if !lead {
		<-r.wake
		lead = r.lead
	}
	if lead {
		s.combine()
	}
	if r.panicked {
		panic(r.panicVal)
	}
	if r.err != nil || r.commit == nil {
		return r.err
	}
	return <-r.commit.done
}

// request is an Update waiting to be run by the combining writer.
type request struct {
	fn   func(tx *Txn) error
	wake chan struct{} // receives when the request is settled or leads

	// Set before wake is signalled:
	lead     bool    // the receiver is to run the next batch
	err      error   // fn's error, or why its changes could not be queued
	commit   *commit // the fsync to wait for; nil when nothing was written
	panicked bool
	panicVal any

	payload []byte // the record of fn's changes, while the batch runs
}

// maxSpare bounds the log buffer kept for reuse between fsyncs.
const maxSpare = 1 << 20

// maxBatch bounds the number of Updates run in one memdb transaction.
const maxBatch = 256

// combine runs the Updates queued, the caller's among them, as one batch
// holding wmu, then hands the writer role to the oldest Update queued
// meanwhile, if any, so that every writer only ever runs one batch.
func (s *Store) combine() {
	s.wmu.Lock()
	s.qmu.Lock()
	n := min(len(s.queue), maxBatch)
	if s.opts.NoGroupCommit {
		n = 1 // every Update writes and fsyncs on its own
	}
	batch := s.queue[:n:n]
	s.queue = append([]*request(nil), s.queue[n:]...)
	s.qmu.Unlock()

	settled := false
	defer func() {
		if !settled {
			// An fn ended its goroutine (runtime.Goexit): nothing of the
			// batch was committed.
			for _, r := range batch {
				if r.commit == nil && r.err == nil && !r.panicked {
					r.err = errors.New("registry: an Update function exited its goroutine")
				}
			}
		}
		s.wmu.Unlock()
		for _, r := range batch {
			r.wake <- struct{}{}
		}
		s.qmu.Lock()
		if len(s.queue) == 0 {
			s.combining = false
		} else {
			s.queue[0].lead = true
			s.queue[0].wake <- struct{}{}
		}
		s.qmu.Unlock()
	}()
	s.runBatch(batch)
	settled = true
}

// runBatch runs the functions of a batch of Updates in one memdb transaction,
// each seeing the changes of those before it, queues one log record for each
// that changed something, and commits the transaction. The changes of a
// function that fails (or panics) are undone before the next runs. It holds
// wmu.
func (s *Store) runBatch(batch []*request) {
	fail := func(err error) {
		for _, r := range batch {
			if r.err == nil && !r.panicked {
				r.err = err
			}
			r.payload = nil
		}
	}
	if s.closed {
		fail(ErrClosed)
		return
	}
	if err := s.prepare(); err != nil {
		fail(err)
		return
	}

	mtx := s.head.Txn(true)
	defer mtx.Abort()
	var log changeLog
	records := 0
	for _, r := range batch {
		start := len(log.changes)
		err := r.run(&Txn{tx: mtx, base: s.base, log: &log})
		if err == nil && !r.panicked {
			r.payload, err = encodeChanges(log.net(start))
		}
		if err != nil || r.panicked {
			r.err, r.payload = err, nil
			if uerr := log.undo(layers{base: s.base, tx: mtx}, start); uerr != nil {
				fail(uerr)
				return
			}
			continue
		}
		if r.payload != nil {
			records++
		}
	}
	s.track(log.changes)
	if records == 0 {
		return
	}

	s.smu.Lock()
	defer s.smu.Unlock()
	if s.broken != nil {
		// An fsync failed while the batch ran: what it read may be rolled back.
		fail(s.unavailable(s.broken))
		return
	}
	var pos logPos
	for _, r := range batch {
		if r.payload != nil {
			pos = s.queueLocked(r.payload)
			s.appended = pos // the next record chains to this one
			r.commit = &commit{seq: pos.seq, done: make(chan error, 1)}
			r.payload = nil
		}
	}
	if s.opts.NoGroupCommit {
		// Write and fsync here, before the memdb commit: on failure the
		// transaction aborts and nothing was visible.
		out := s.out
		s.out = nil
		if err := s.flush(out); err != nil {
			s.breakLocked(err, false)
			for _, r := range batch {
				if r.commit != nil {
					r.commit, r.err = nil, s.unavailable(err)
				}
			}
			return
		}
		mtx.Commit()
		s.appended, s.appendedDB = pos, s.head.Snapshot()
		s.publishLocked(pos, s.appendedDB)
		for _, r := range batch {
			if r.commit != nil {
				r.commit.done <- nil
			}
		}
		return
	}
	mtx.Commit()
	s.appended, s.appendedDB = pos, s.head.Snapshot()
	for _, r := range batch {
		if r.commit != nil {
			s.pending = append(s.pending, r.commit)
		}
	}
	s.work.Signal()
}

// run calls the request's function, recording a panic instead of raising it.
func (r *request) run(tx *Txn) (err error) {
	defer func() {
		tx.done = true
		if p := recover(); p != nil {
			r.panicked, r.panicVal = true, p
		}
	}()
	return r.fn(tx)
}

// encodeChanges encodes the changes of one Update as a batch payload, or
// returns nil when there are none.
func encodeChanges(changes memdb.Changes) ([]byte, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	payload, err := encodeBatch(changes)
	if err != nil {
		return nil, err
	}
	if len(payload) > maxPayload {
		return nil, fmt.Errorf("update of %d changes is %d bytes, more than %d",
			len(changes), len(payload), maxPayload)
	}
	return payload, nil
}

// prepare undoes the effects of a failed fsync and repairs the log tail
// before a write, holding wmu.
func (s *Store) prepare() error {
	s.smu.Lock()
	defer s.smu.Unlock()
	if s.broken == nil {
		return nil
	}
	for len(s.pending) > 0 {
		s.drained.Wait()
	}
	if s.rollback {
		s.head = s.durableDB.Snapshot()
		s.appended, s.appendedDB = s.durable, s.durableDB
		s.rollback = false
	}
	if err := s.repairTailLocked(); err != nil {
		return s.unavailable(err)
	}
	s.broken = nil
	return nil
}

func (s *Store) unavailable(err error) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// breakLocked records that the log tail can no longer be trusted: the next
// write repairs it first. With failPending (an fsync failed), the commits
// waiting for an fsync fail and head is rolled back to the durable state.
// Only the first failure is logged.
func (s *Store) breakLocked(err error, failPending bool) {
	if !s.failing {
		s.log.Error("registry writes failing; reads continue", "err", err)
		s.failing = true
	}
	if s.broken == nil {
		s.broken = err
	}
	if failPending {
		s.epoch++
	}
	if failPending {
		s.out = nil
	}
	if failPending && len(s.pending) > 0 {
		s.rollback = true
		for _, c := range s.pending {
			c.done <- s.unavailable(err)
		}
		s.pending = nil
		s.drained.Broadcast()
	}
}

// publishLocked makes the state db at pos durable and visible to readers.
func (s *Store) publishLocked(pos logPos, db *memdb.MemDB) {
	if s.failing {
		s.log.Info("registry writes recovered", "seq", pos.seq)
		s.failing = false
	}
	s.durable, s.durableDB = pos, db
	s.view.Store(&layers{base: s.base, tx: db.Txn(false)})
	s.maybeSnapshotLocked()
}

func (s *Store) fsynced(d time.Duration) {
	if s.opts.OnFsync != nil {
		s.opts.OnFsync(d)
	}
}

// syncLoop is the group-commit syncer. Writers only queue their records in
// memory; whenever commits are pending, the syncer takes everything queued,
// writes it with one write per segment, fsyncs, and acknowledges every
// commit covered. Commits queued while it waits for the disk ride on its
// next round. Writers thus never wait for I/O while holding a lock.
func (s *Store) syncLoop() {
	defer close(s.syncerDone)
	s.smu.Lock()
	defer s.smu.Unlock()
	for {
		for len(s.pending) == 0 && !s.stopping {
			s.work.Wait()
		}
		if len(s.pending) == 0 {
			return
		}
		out, pos, db, n, epoch := s.out, s.appended, s.appendedDB, len(s.pending), s.epoch
		s.out = nil

		s.smu.Unlock()
		err := s.flush(out)
		s.smu.Lock()
		if len(out) == 1 && cap(out[0].data) <= maxSpare {
			s.spare = out[0].data[:0] // written: reuse it for the next round
		}

		if epoch != s.epoch {
			continue // a failure settled these commits meanwhile
		}
		if err != nil {
			s.breakLocked(err, true)
			continue
		}
		s.publishLocked(pos, db)
		for _, c := range s.pending[:n] {
			c.done <- nil
		}
		s.pending = append([]*commit(nil), s.pending[n:]...)
		s.drained.Broadcast()
	}
}
