package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// segments returns the data directory's log segments, oldest first.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "wal-*.log"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no log segment in %s (%v)", dir, err)
	}
	return segs
}

// registerN registers n clients and returns their ids.
func registerN(t *testing.T, p *authzProc, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id, err := register(p.issuer(), "damage "+string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// startFails runs serve expecting it to refuse, and returns what it said.
func (p *authzProc) startFails(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, p.args...)
	cmd.Env = p.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("serve started on damaged data:\n%s", out)
	}
	return string(out)
}

func requireClients(t *testing.T, p *authzProc, ids []string) {
	t.Helper()
	have, err := p.clientIDs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !have[id] {
			t.Errorf("client %s lost", id)
		}
	}
}

// TestDamagedLogWithRealBinary damages the log of a stopped server in the
// ways a crash or a bad disk does and checks what the operator is told.
func TestDamagedLogWithRealBinary(t *testing.T) {
	p := newAuthzProc(t, "http://127.0.0.1:1/mcp")
	p.start()
	ids := registerN(t, p, 10)
	p.stop()

	// A torn final record: the segment ends inside a record.
	seg := segments(t, p.dataDir)
	last := seg[len(seg)-1]
	torn := []byte{0x40, 0, 0, 0, 1, 1, 0, 0, 0xff, 0xff, 0xff}
	f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(torn)
	f.Close()
	p.start()
	logs := p.logText()
	if !strings.Contains(logs, filepath.Base(last)) || !strings.Contains(logs, "level=WARN") {
		t.Errorf("no warning naming %s after a torn tail:\n%s", filepath.Base(last), logs)
	}
	requireClients(t, p, ids)
	registerN(t, p, 3) // so that the record damaged below is in the middle of the log
	p.stop()

	// A flipped byte inside a record in the middle of the log.
	seg = segments(t, p.dataDir)
	victim := seg[0]
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	off := 32 + 24 + 10 // inside the first record's payload
	data[off] ^= 0x55
	if err := os.WriteFile(victim, data, 0o600); err != nil {
		t.Fatal(err)
	}

	said := p.startFails(t)
	if !strings.Contains(said, filepath.Base(victim)) || !strings.Contains(said, "offset") {
		t.Errorf("refusal does not name the file and offset:\n%s", said)
	}
	out, err := p.cli(t.Context(), "data", "verify", p.dataDir)
	if err == nil {
		t.Errorf("data verify passed a corrupt log:\n%s", out)
	}

	// --repair sets the damage aside and starts with what verifies.
	p.args = append(p.args, "--repair")
	p.start()
	if !strings.Contains(p.logText(), "damaged") {
		t.Errorf("repair did not say what it set aside:\n%s", p.logText())
	}
	if _, err := os.Stat(filepath.Join(p.dataDir, "damaged")); err != nil {
		t.Errorf("no copy of the damaged data kept: %v", err)
	}
	p.stop()
	if out, err := p.cli(t.Context(), "data", "verify", p.dataDir); err != nil {
		t.Errorf("data verify after repair: %v\n%s", err, out)
	}
}

// TestSecondProcessRefused starts a second server on a data directory that
// a running one holds.
func TestSecondProcessRefused(t *testing.T) {
	p := newAuthzProc(t, "http://127.0.0.1:1/mcp")
	p.start()
	second := newAuthzProc(t, "http://127.0.0.1:1/mcp")
	second.dataDir = p.dataDir
	for i, a := range second.args {
		if a == "--data-dir" {
			second.args[i+1] = p.dataDir
		}
	}
	said := second.startFails(t)
	holder := fmt.Sprintf("process %d holds %s", p.cmd.Process.Pid,
		filepath.Join(p.dataDir, "LOCK"))
	if !strings.Contains(said, holder) {
		t.Errorf("second process did not say %q:\n%s", holder, said)
	}
}

// TestDamagedSnapshotWithRealBinary damages every snapshot of a stopped
// server once compaction has removed the log they cover. The start is
// refused, naming the snapshot and offset, and changes nothing, so the next
// start says the same; --repair keeps the log after the snapshots, and the
// start after it is an ordinary one.
func TestDamagedSnapshotWithRealBinary(t *testing.T) {
	p := newAuthzProc(t, "http://127.0.0.1:1/mcp", "--snapshot-records", "4")
	var ids []string
	for range 3 { // each start opens a new segment; the snapshots compact the older ones
		p.start()
		ids = registerN(t, p, 6)
		p.stop()
	}
	if seg := segments(t, p.dataDir); filepath.Base(seg[0]) == "wal-0000000000000001.log" {
		t.Fatalf("compaction kept the whole log: %v", seg)
	}
	snaps, _ := filepath.Glob(filepath.Join(p.dataDir, "snap-*.snap"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot written")
	}
	for _, snap := range snaps {
		data, err := os.ReadFile(snap)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0x55
		if err := os.WriteFile(snap, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	newest := filepath.Base(snaps[len(snaps)-1])
	var first string
	for try := range 2 {
		said := p.startFails(t)
		if !strings.Contains(said, newest) || !strings.Contains(said, "offset") ||
			!strings.Contains(said, "--repair") {
			t.Fatalf("refusal does not name %s, the offset and --repair:\n%s", newest, said)
		}
		line := said[strings.LastIndex(said, "mcp-authz:"):]
		if try == 0 {
			first = line
		} else if line != first {
			t.Errorf("the second start says\n%s\nthe first said\n%s", line, first)
		}
	}
	if _, err := os.Stat(filepath.Join(p.dataDir, "damaged")); !os.IsNotExist(err) {
		t.Errorf("a refused start set files aside: %v", err)
	}
	if out, err := p.cli(t.Context(), "data", "verify", p.dataDir); err == nil {
		t.Errorf("data verify passed damaged snapshots:\n%s", out)
	}

	p.args = append(p.args, "--repair")
	p.start()
	if !strings.Contains(p.logText(), "first_missing") {
		t.Errorf("the repair did not say which records it dropped:\n%s", p.logText())
	}
	requireClients(t, p, ids[len(ids)-1:]) // the last run's log is kept
	p.stop()
	p.args = p.args[:len(p.args)-1]
	p.start()
	requireClients(t, p, ids[len(ids)-1:])
	p.stop()
	if out, err := p.cli(t.Context(), "data", "verify", p.dataDir); err != nil {
		t.Errorf("data verify after the repair: %v\n%s", err, out)
	}
}
