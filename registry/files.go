package registry

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// File names in the data directory (see doc.go).
const (
	lockName    = "LOCK"
	walPrefix   = "wal-"
	walSuffix   = ".log"
	snapPrefix  = "snap-"
	snapSuffix  = ".snap"
	tmpSuffix   = ".tmp"
	damagedDir  = "damaged"
	dirPerm     = 0o700
	filePerm    = 0o600
	seqHexWidth = 16
)

func segmentName(firstSeq uint64) string {
	return fmt.Sprintf("%s%0*x%s", walPrefix, seqHexWidth, firstSeq, walSuffix)
}

func snapshotName(seq uint64) string {
	return fmt.Sprintf("%s%0*x%s", snapPrefix, seqHexWidth, seq, snapSuffix)
}

// parseSeqName returns the sequence number in a segment or snapshot name.
func parseSeqName(name, prefix, suffix string) (uint64, bool) {
	if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) {
		return 0, false
	}
	hex := name[len(prefix) : len(name)-len(suffix)]
	if len(hex) != seqHexWidth {
		return 0, false
	}
	n, err := strconv.ParseUint(hex, 16, 64)
	return n, err == nil
}

// isOwnTemp reports whether name is the temporary name of a snapshot or a
// segment being created; other files are never removed.
func isOwnTemp(name string) bool {
	base, ok := strings.CutSuffix(name, tmpSuffix)
	if !ok {
		return false
	}
	_, seg := parseSeqName(base, walPrefix, walSuffix)
	_, snap := parseSeqName(base, snapPrefix, snapSuffix)
	return seg || snap
}

// dirListing is what a data directory holds, by kind, sorted by sequence.
type dirListing struct {
	segments  []uint64 // first sequence of each segment
	snapshots []uint64 // last sequence of each snapshot
	temps     []string
}

func listDir(fsys FS, dir string) (dirListing, error) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return dirListing{}, fmt.Errorf("listing %s: %w", dir, err)
	}
	var l dirListing
	for _, e := range ents {
		name := e.Name()
		if seq, ok := parseSeqName(name, walPrefix, walSuffix); ok {
			l.segments = append(l.segments, seq)
		} else if seq, ok := parseSeqName(name, snapPrefix, snapSuffix); ok {
			l.snapshots = append(l.snapshots, seq)
		} else if isOwnTemp(name) {
			l.temps = append(l.temps, name)
		}
	}
	slices.Sort(l.segments)
	slices.Sort(l.snapshots)
	return l, nil
}

// copyAside copies the file name of dir into dir/damaged under a new name and
// makes the copy durable before returning its path. The original is kept.
func copyAside(fsys FS, dir, name string) (string, error) {
	dst, err := asideName(fsys, dir, name)
	if err != nil {
		return "", err
	}
	src, err := fsys.OpenFile(filepath.Join(dir, name), os.O_RDONLY, 0)
	if err != nil {
		return "", err
	}
	defer src.Close()
	out, err := fsys.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, src)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.SyncDir(filepath.Dir(dst))
	}
	if err != nil {
		fsys.Remove(dst)
		return "", fmt.Errorf("copying %s aside: %w", name, err)
	}
	return dst, nil
}

// moveAside renames the file name of dir into dir/damaged.
func moveAside(fsys FS, dir, name string) (string, error) {
	dst, err := asideName(fsys, dir, name)
	if err != nil {
		return "", err
	}
	if err := fsys.Rename(filepath.Join(dir, name), dst); err != nil {
		return "", fmt.Errorf("moving %s aside: %w", name, err)
	}
	if err := fsys.SyncDir(filepath.Dir(dst)); err != nil {
		return "", err
	}
	return dst, fsys.SyncDir(dir)
}

func asideName(fsys FS, dir, name string) (string, error) {
	d := filepath.Join(dir, damagedDir)
	if err := fsys.MkdirAll(d, dirPerm); err != nil {
		return "", fmt.Errorf("creating %s: %w", d, err)
	}
	// So that the copies made in it survive a crash with it.
	if err := fsys.SyncDir(dir); err != nil {
		return "", fmt.Errorf("creating %s: %w", d, err)
	}
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	return filepath.Join(d, name+"."+stamp), nil
}

// FileError reports damage in a data file: the file, the offset at which the
// damage starts, and the cause. It wraps ErrCorrupt or ErrVersion.
type FileError struct {
	Path   string
	Offset int64
	Err    error
}

// Error names the file and offset, then the cause.
func (e *FileError) Error() string {
	return fmt.Sprintf("%s at offset %d: %v", e.Path, e.Offset, e.Err)
}

// Unwrap returns the cause (ErrCorrupt, ErrVersion or an I/O error).
func (e *FileError) Unwrap() error { return e.Err }

var (
	// ErrCorrupt is wrapped by errors about data that fails its checksum or
	// does not parse. Open refuses such data unless Options.Repair is set.
	ErrCorrupt = errors.New("corrupt data")
	// ErrVersion is wrapped by errors about data written in a newer format
	// than this program reads. Repair does not touch such data.
	ErrVersion = errors.New("unsupported format version")
)
