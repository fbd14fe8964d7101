package registry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTornShortSectorPiece simulates a crash during the write of the last
// record R, whose Update never returned: the disk wrote one of the two
// sectors R spans and not the other, so R's bytes in it read as zero, as
// the crash model allows. When R has only 8 bytes in the unwritten sector
// (fewer than minZeroRun), Open must still take it for a torn write and
// start without Repair, keeping every record before it. Found by a helper
// enumerating crash states.
func TestTornShortSectorPiece(t *testing.T) {
	s, src := openTest(t, Options{})
	for i := range 400 {
		c := testClient(fmt.Sprint("z", i))
		c.Name = strings.Repeat("x", 40+(i*13)%97) // records of many sizes
		update(t, s, func(tx *Txn) error { return tx.PutClient(c) })
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(src, segmentName(1))
	data := mustRead(t, seg)
	offs := recordOffsets(t, data)
	end := func(i int) int64 {
		if i+1 < len(offs) {
			return offs[i+1]
		}
		return int64(len(data))
	}
	tests := []struct {
		name string
		pick func(i int) bool             // a record R placed so
		zero func(i int) (from, to int64) // these bytes of R are in the unwritten sector
	}{
		{"its last 8 bytes",
			func(i int) bool { return end(i)%sectorSize == 8 },
			func(i int) (int64, int64) { return end(i) - 8, end(i) }},
		{"its first 8 bytes",
			func(i int) bool { return offs[i]%sectorSize == sectorSize-8 },
			func(i int) (int64, int64) { return offs[i], offs[i] + 8 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := -1
			for i := 1; i < len(offs) && r < 0; i++ {
				if tt.pick(i) {
					r = i
				}
			}
			if r < 0 {
				t.Fatal("no record of the log is placed so; change the record sizes")
			}
			dir := t.TempDir()
			b := append([]byte(nil), data[:end(r)]...) // cut after R
			from, to := tt.zero(r)
			clear(b[from:to])
			if err := os.WriteFile(filepath.Join(dir, segmentName(1)), b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(context.Background(), dir, Options{Logger: testLogger(t)})
			if err != nil {
				t.Fatalf("record %d, bytes %d to %d zero: Open after a crash: %v", r, from, to,
					err)
			}
			defer s.Close()
			for i := range r {
				if s.Client(fmt.Sprint("z", i)) == nil {
					t.Errorf("acknowledged client z%d lost", i)
				}
			}
			if s.Client(fmt.Sprint("z", r)) != nil {
				t.Errorf("the torn record z%d was kept", r)
			}
		})
	}
}
