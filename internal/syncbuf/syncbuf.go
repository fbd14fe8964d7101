// Package syncbuf provides a byte buffer that several goroutines may write
// and read at once, for tests that read a log while a server writes it.
package syncbuf

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer guarded by a mutex. The zero value is empty and
// ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines returns the non-empty lines written so far that contain every one
// of subs.
func (b *Buffer) Lines(subs ...string) []string {
	var out []string
	for l := range strings.SplitSeq(b.String(), "\n") {
		match := l != ""
		for _, s := range subs {
			match = match && strings.Contains(l, s)
		}
		if match {
			out = append(out, l)
		}
	}
	return out
}
