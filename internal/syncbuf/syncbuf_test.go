package syncbuf

import (
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				fmt.Fprintf(&b, "w%d line %d\n", i, j)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := len(b.Lines()); got != 200 {
		t.Errorf("%d lines, want 200", got)
	}
	tests := []struct {
		name string
		subs []string
		want int
	}{
		{"one writer", []string{"w1 "}, 50},
		{"writer and line", []string{"w2 ", "line 4"}, 11}, // lines 4 and 40 to 49
		{"nothing", []string{"absent"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, len(b.Lines(tt.subs...))); diff != "" {
				t.Errorf("lines matching %q (-want +got):\n%s", tt.subs, diff)
			}
		})
	}
}
