package registry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// dirFiles returns every file under dir (relative path to contents).
func dirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[rel] = mustRead(t, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestOpenReadOnly checks that a read-only store sees the durable state,
// refuses writes, changes no file (not even a torn tail) and opens beside
// the store holding the lock.
func TestOpenReadOnly(t *testing.T) {
	s, dir := openTest(t, Options{})
	update(t, s, testFixture().putAll)
	update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("late")) })

	ro, err := OpenReadOnly(context.Background(), dir, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("opening read-only beside a live store: %v", err)
	}
	if ro.Client("late") == nil || len(ro.Clients()) != len(s.Clients()) {
		t.Errorf("read-only store holds %d clients, want %d including late",
			len(ro.Clients()), len(s.Clients()))
	}
	err = ro.Update(context.Background(), func(tx *Txn) error {
		return tx.PutClient(testClient("nope"))
	})
	if !errors.Is(err, ErrReadOnly) {
		t.Errorf("Update on a read-only store: %v, want ErrReadOnly", err)
	}
	if err := ro.Snapshot(context.Background()); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Snapshot on a read-only store: %v, want ErrReadOnly", err)
	}
	if err := ro.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A torn tail is left out and left alone.
	seg := filepath.Join(dir, segmentName(1))
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Close()
	before := dirFiles(t, dir)
	logs := &logRecorder{}
	ro, err = OpenReadOnly(context.Background(), dir, Options{Logger: slog.New(logs)})
	if err != nil {
		t.Fatalf("opening read-only with a torn tail: %v", err)
	}
	if ro.Client("late") == nil {
		t.Error("the records before the torn tail are missing")
	}
	if len(logs.matching("WARN", "torn", seg)) != 1 {
		t.Errorf("want one warning naming %s, got %q", seg, logs.recs)
	}
	after := dirFiles(t, dir)
	if len(after) != len(before) {
		t.Errorf("files before %d, after %d", len(before), len(after))
	}
	for name, b := range before {
		if !bytes.Equal(after[name], b) {
			t.Errorf("%s changed", name)
		}
	}
}

// TestNoRegistry checks that the read-only opener and the operator
// functions refuse a directory that is missing or holds no registry, and
// create nothing.
func TestNoRegistry(t *testing.T) {
	empty := t.TempDir()
	missing := filepath.Join(t.TempDir(), "typo")
	for _, dir := range []string{empty, missing} {
		ops := []struct {
			name string
			run  func() error
		}{
			{"OpenReadOnly", func() error {
				_, err := OpenReadOnly(context.Background(), dir, Options{})
				return err
			}},
			{"Verify", func() error { _, err := Verify(dir); return err }},
			{"Dump", func() error { return Dump(dir, &bytes.Buffer{}) }},
			{"Compact", func() error { return Compact(context.Background(), dir) }},
		}
		for _, op := range ops {
			t.Run(op.name+"/"+filepath.Base(dir), func(t *testing.T) {
				if err := op.run(); !errors.Is(err, ErrNoRegistry) {
					t.Errorf("%s of %s: %v, want ErrNoRegistry", op.name, dir, err)
				}
			})
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was created: %v", missing, err)
	}
	if got := dirFiles(t, empty); len(got) != 0 {
		t.Errorf("files appeared in the empty directory: %v", got)
	}
}
