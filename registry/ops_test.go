package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHousekeep(t *testing.T) {
	s, dir := openTest(t, Options{})
	now := t0.Add(time.Hour)
	update(t, s, func(tx *Txn) error {
		c := testClient("idle")
		c.SecretExpiresAt = t0 // an expired secret does not remove a client
		code := func(h string, exp time.Time) *AuthCode {
			return &AuthCode{Hash: h, ClientID: "idle", ExpiresAt: exp}
		}
		rt := func(h string, exp time.Time) *RefreshToken {
			r := testRefresh(h, "g", "idle")
			r.ExpiresAt = exp
			return r
		}
		rev := func(k string, exp time.Time) *Revocation { return &Revocation{Key: k, ExpiresAt: exp} }
		return errorsJoin(
			tx.PutClient(c),
			tx.PutAuthCode(code("old", now.Add(-time.Second))),
			tx.PutAuthCode(code("new", now.Add(time.Second))),
			tx.PutRefreshToken(rt("old", now.Add(-time.Second))),
			tx.PutRefreshToken(rt("new", now.Add(time.Minute))),
			tx.PutRevocation(rev("jti:old", now.Add(-time.Second))),
			tx.PutRevocation(rev("jti:new", now.Add(time.Minute))),
		)
	})
	sw, err := s.Housekeep(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Swept{Codes: 1, RefreshTokens: 1, Revocations: 1}, sw); diff != "" {
		t.Errorf("swept (-want +got):\n%s", diff)
	}
	check := func(s *Store) {
		t.Helper()
		got := []bool{s.Client("idle") != nil, s.AuthCode("old") != nil,
			s.AuthCode("new") != nil, s.RefreshToken("old") != nil, s.RefreshToken("new") != nil,
			s.Revoked("jti:old"), s.Revoked("jti:new")}
		want := []bool{true, false, true, false, true, false, true}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("client, codes, tokens, revocations present (-want +got):\n%s", diff)
		}
	}
	check(s)
	s = reopen(t, s, dir, Options{})
	check(s)
	// A client with nothing left, a year later, stays.
	if _, err := s.Housekeep(context.Background(), now.AddDate(1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if s.Client("idle") == nil {
		t.Errorf("housekeeping removed an idle client")
	}
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func TestHousekeepInterval(t *testing.T) {
	now := t0.Add(time.Hour)
	opts := Options{HousekeepInterval: time.Millisecond, Now: func() time.Time { return now }}
	s, _ := openTest(t, opts)
	update(t, s, func(tx *Txn) error {
		return tx.PutRevocation(&Revocation{Key: "jti:x", ExpiresAt: t0})
	})
	deadline := time.Now().Add(10 * time.Second)
	for s.Revoked("jti:x") {
		if time.Now().After(deadline) {
			t.Fatal("periodic housekeeping did not remove an expired revocation")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestVerify(t *testing.T) {
	opts := Options{SegmentSize: 800}
	s, dir := openTest(t, opts)
	writeHistory(t, s)
	snapshot(t, s)
	update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("late")) })
	s.Close()

	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Problems) != 0 {
		t.Errorf("Verify of a sound directory: %+v", rep.Problems)
	}
	var kinds []string
	for _, f := range rep.Files {
		kinds = append(kinds, f.Kind)
	}
	if len(rep.Files) < 2 || kinds[0] != "snapshot" || kinds[len(kinds)-1] != "segment" {
		t.Errorf("files reported: %+v", rep.Files)
	}

	l := listing(t, dir)
	seg := filepath.Join(dir, segmentName(l.segments[0]))
	offs := recordOffsets(t, mustRead(t, seg))
	flipByte(t, seg, offs[0]+recHeaderSize+3)
	rep, err = Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Problems) == 0 || rep.Problems[0].File != seg ||
		rep.Problems[0].Offset != offs[0] {
		t.Errorf("Verify did not name %s at %d: %+v", seg, offs[0], rep.Problems)
	}
}

func TestDump(t *testing.T) {
	s, dir := openTest(t, Options{})
	writeHistory(t, s)
	update(t, s, func(tx *Txn) error {
		return tx.PutAuthCode(&AuthCode{Hash: "code-secret-hash", ClientID: "c2"})
	})
	snapshot(t, s)
	update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("late")) })
	want := stateOf(s)

	var buf bytes.Buffer
	if err := Dump(dir, &buf); err != nil { // beside the live store: no lock taken
		t.Fatal(err)
	}
	var got dump
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("Dump is not JSON: %v", err)
	}
	if got.Seq != s.durable.seq || len(got.Clients) != len(want.Clients) ||
		len(got.RefreshTokens) != len(want.Refresh) || len(got.Users) != len(want.Users) {
		t.Errorf("Dump at seq %d holds %d clients, %d tokens, %d users; want %d, %d, %d, %d",
			got.Seq, len(got.Clients), len(got.RefreshTokens), len(got.Users),
			s.durable.seq, len(want.Clients), len(want.Refresh), len(want.Users))
	}
	out := buf.String()
	for _, secret := range []string{"secret-hash-c2", "rt-hash-c2", "$2a$admin",
		"code-secret-hash", `"h1"`, "AQ=="} {
		if strings.Contains(out, secret) {
			t.Errorf("Dump shows the secret %q", secret)
		}
	}
	if !strings.Contains(out, hashFingerprint("secret-hash-c2")) {
		t.Errorf("Dump lacks the fingerprint of a client secret hash")
	}
}

func TestCompact(t *testing.T) {
	opts := Options{SegmentSize: 600, KeepSnapshots: 1}
	s, dir := openTest(t, opts)
	writeHistory(t, s)
	want := stateOf(s)
	s.Close()
	before := len(listing(t, dir).segments)

	if err := Compact(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	l := listing(t, dir)
	if len(l.snapshots) != 1 || len(l.segments) >= before {
		t.Errorf("after Compact: %d snapshots, %d segments (from %d)",
			len(l.snapshots), len(l.segments), before)
	}
	s = openDir(t, dir, opts)
	if diff := cmp.Diff(want, stateOf(s)); diff != "" {
		t.Errorf("state after Compact (-want +got):\n%s", diff)
	}
	// Compact needs the lock.
	if err := Compact(context.Background(), dir); err == nil {
		t.Errorf("Compact ran on a directory in use")
	}
}

func TestFileModes(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "data")
	s := openDir(t, dir, Options{})
	update(t, s, func(tx *Txn) error { return tx.PutClient(testClient("c")) })
	snapshot(t, s)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != dirPerm {
		t.Errorf("directory mode %v, want %v", fi.Mode().Perm(), os.FileMode(dirPerm))
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		info, _ := e.Info()
		if info.Mode().Perm() != filePerm {
			t.Errorf("%s has mode %v, want %v", e.Name(), info.Mode().Perm(), os.FileMode(filePerm))
		}
	}
}

func TestHashFingerprintMatchesLoggedFingerprint(t *testing.T) {
	raw := "a-refresh-token"
	sum := sha256.Sum256([]byte(raw))
	stored := hex.EncodeToString(sum[:])
	// The other packages log hex(sha256(raw))[:12] for a raw secret.
	if got, want := hashFingerprint(stored), stored[:12]; got != want {
		t.Errorf("hashFingerprint(stored) = %q, want %q", got, want)
	}
	if got := hashFingerprint("not-a-hash"); got != fingerprint("not-a-hash") {
		t.Errorf("hashFingerprint of a non-hash = %q, want the plain fingerprint", got)
	}
}
