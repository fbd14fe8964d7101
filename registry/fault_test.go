package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// faultFS is the OS filesystem with injectable failures: while an operation
// is set to fail, every call of it (on files whose base name has the given
// prefix) returns the error. A failing write first writes half its bytes,
// as a full disk does.
type faultFS struct {
	OSFS
	mu     sync.Mutex
	faults map[string]fault // by operation: write, sync, truncate, create, syncdir, rename
	calls  map[string]int
}

type fault struct {
	prefix string
	err    error
}

func newFaultFS() *faultFS {
	return &faultFS{faults: map[string]fault{}, calls: map[string]int{}}
}

func (f *faultFS) set(op, prefix string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[op] = fault{prefix, err}
}

func (f *faultFS) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = map[string]fault{}
}

func (f *faultFS) check(op, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	ft, ok := f.faults[op]
	if ok && strings.HasPrefix(filepath.Base(name), ft.prefix) {
		return &fs.PathError{Op: op, Path: name, Err: ft.err}
	}
	return nil
}

func (f *faultFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if flag&os.O_CREATE != 0 {
		if err := f.check("create", name); err != nil {
			return nil, err
		}
	}
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, name: name}, nil
}

func (f *faultFS) SyncDir(name string) error {
	if err := f.check("syncdir", name+"/"); err != nil {
		return err
	}
	return f.OSFS.SyncDir(name)
}

func (f *faultFS) Rename(oldname, newname string) error {
	if err := f.check("rename", oldname); err != nil {
		return err
	}
	return f.OSFS.Rename(oldname, newname)
}

type faultFile struct {
	File
	fs   *faultFS
	name string
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.check("write", f.name); err != nil {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, err
	}
	return f.File.Write(p)
}

func (f *faultFile) Sync() error {
	if err := f.fs.check("sync", f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) Truncate(size int64) error {
	if err := f.fs.check("truncate", f.name); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func TestDiskFaults(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		fault func(f *faultFS)
	}{
		{"full disk on write", Options{}, func(f *faultFS) {
			f.set("write", walPrefix, syscall.ENOSPC)
		}},
		{"fsync fails", Options{}, func(f *faultFS) {
			f.set("sync", walPrefix, syscall.EIO)
		}},
		{"fsync fails without group commit", Options{NoGroupCommit: true}, func(f *faultFS) {
			f.set("sync", walPrefix, syscall.EIO)
		}},
		{"read-only disk", Options{}, func(f *faultFS) {
			for _, op := range []string{"write", "sync", "truncate", "create", "syncdir"} {
				f.set(op, "", syscall.EROFS)
			}
		}},
		{"full disk on rotation", Options{SegmentSize: 1}, func(f *faultFS) {
			f.set("create", walPrefix, syscall.ENOSPC)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ffs, logs := newFaultFS(), &logRecorder{}
			tt.opts.FS, tt.opts.Logger = ffs, slog.New(logs)
			s, dir := openTest(t, tt.opts)
			update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("before")) })
			want := stateOf(s)

			tt.fault(ffs)
			for i := range 3 {
				id := fmt.Sprint("failed", i)
				err := s.Update(context.Background(), func(tx *Txn) error {
					return tx.PutClient(testClient(id))
				})
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("Update during the fault = %v, want ErrUnavailable", err)
				}
				if s.Client(id) != nil {
					t.Errorf("client %s of a failed Update is visible", id)
				}
			}
			if diff := cmp.Diff(want, stateOf(s)); diff != "" {
				t.Errorf("state changed by failed Updates (-want +got):\n%s", diff)
			}
			if errs := logs.matching("ERROR"); len(errs) != 1 {
				t.Errorf("want the failure logged once, got %q", errs)
			}

			ffs.clear()
			update(t, s, func(tx *Txn) error {
				if tx.Client("failed0") != nil {
					t.Errorf("a failed write is visible to the next transaction")
				}
				return tx.PutClient(testClient("after"))
			})
			if len(logs.matching("INFO", "recovered")) != 1 {
				t.Errorf("want one recovery line, got %q", logs.recs)
			}
			want = stateOf(s)
			s = reopen(t, s, dir, Options{})
			if diff := cmp.Diff(want, stateOf(s)); diff != "" {
				t.Errorf("state after reopen (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFsyncFailureFailsRiders checks that every Update sharing a failed
// group-commit fsync fails, and that none of them becomes visible.
func TestFsyncFailureFailsRiders(t *testing.T) {
	ffs := newFaultFS()
	s, dir := openTest(t, Options{FS: ffs})
	ffs.set("sync", walPrefix, syscall.EIO)
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.Update(context.Background(), func(tx *Txn) error {
				return tx.PutClient(testClient(fmt.Sprint("c", i)))
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("Update %d = %v, want ErrUnavailable", i, err)
		}
	}
	if n := len(s.Clients()); n != 0 {
		t.Errorf("%d clients of failed Updates are visible", n)
	}
	ffs.clear()
	update(t, s, func(tx *Txn) error {
		if n := len(all[Client](tx.layers(), tableClients, indexID)); n != 0 {
			t.Errorf("%d failed clients visible to the next transaction", n)
		}
		return nil
	})
	s = reopen(t, s, dir, Options{})
	if n := len(s.Clients()); n != 0 {
		t.Errorf("%d failed clients came back after reopen", n)
	}
}

func TestSnapshotFault(t *testing.T) {
	for _, op := range []string{"write", "sync", "rename", "create"} {
		t.Run(op, func(t *testing.T) {
			ffs := newFaultFS()
			var snapErrs []error
			opts := Options{FS: ffs, OnSnapshot: func(_ time.Duration, err error) {
				snapErrs = append(snapErrs, err)
			}}
			s, dir := openTest(t, opts)
			writeHistory(t, s)
			ffs.set(op, snapPrefix, syscall.ENOSPC)
			if err := s.Snapshot(context.Background()); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Snapshot = %v, want ENOSPC", err)
			}
			if len(snapErrs) != 1 || snapErrs[0] == nil {
				t.Errorf("OnSnapshot saw %v, want one failure", snapErrs)
			}
			if l := listing(t, dir); len(l.snapshots)+len(l.temps) != 0 {
				t.Errorf("a failed snapshot left files: %+v", l)
			}
			// Writes go on, and the next snapshot works.
			update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("x")) })
			ffs.clear()
			snapshot(t, s)
			want := stateOf(s)
			s = reopen(t, s, dir, Options{})
			if diff := cmp.Diff(want, stateOf(s)); diff != "" {
				t.Errorf("state after reopen (-want +got):\n%s", diff)
			}
		})
	}
}
