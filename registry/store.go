package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"
)

// ErrNotFound is returned by writes that need an existing record.
var ErrNotFound = errors.New("not found")

// ErrUnavailable is wrapped by write errors caused by the disk (full,
// read-only, failing): the write was not made and may be retried later.
var ErrUnavailable = errors.New("registry unavailable for writes")

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("registry closed")

// Options configures Open.
type Options struct {
	// Logger receives the store's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Store is the registry: an in-memory index made durable on disk.
//
// Reads on the Store see the state as of the last durable write; they never
// do I/O and never block on writers.
type Store struct {
	log *slog.Logger

	// wmu serialises writers. head is the newest state, including writes
	// whose log record is not yet durable; only writers read it.
	wmu    sync.Mutex
	head   *memdb.MemDB
	closed bool

	// view is a read transaction on the newest durable state. A memdb read
	// transaction only reads immutable trees, so it is shared by all readers.
	view atomic.Pointer[memdb.Txn]
}

// Open opens (creating if needed) the data directory dir, takes its lock and
// rehydrates the index from disk.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	db, err := newDB()
	if err != nil {
		return nil, err
	}
	s := &Store{log: opts.Logger, head: db}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.view.Store(db.Txn(false))
	return s, nil
}

// newDB returns an empty index. It is a memdb snapshot rather than the
// primary database: nothing watches the registry, and a non-primary memdb
// skips tracking the mutation channels of its radix trees.
func newDB() (*memdb.MemDB, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("creating index: %w", err)
	}
	return db.Snapshot(), nil
}

// Close flushes and closes the store and releases the directory lock.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.closed = true
	return nil
}

// Update runs fn in a write transaction. Its changes become visible and are
// durable on disk before Update returns nil; if fn returns an error nothing
// is written. fn may be called only once and must not block on I/O.
func (s *Store) Update(ctx context.Context, fn func(tx *Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return ErrClosed
	}

	mtx := s.head.Txn(true)
	defer mtx.Abort()
	mtx.TrackChanges()
	tx := &Txn{tx: mtx}
	err := fn(tx)
	tx.done = true
	if err != nil {
		return err
	}
	if len(mtx.Changes()) == 0 {
		return nil
	}
	mtx.Commit()
	s.view.Store(s.head.Txn(false))
	return nil
}
