package registry

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-memdb"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files and the fuzz corpus")

// goldenChanges returns the memdb changes of two fixed transactions.
func goldenChanges(t testing.TB) []memdb.Changes {
	t.Helper()
	db := newDB()
	var out []memdb.Changes
	steps := []func(tx *Txn) error{
		func(tx *Txn) error {
			c := testClient("golden")
			c.SecretExpiresAt = time.Time{}
			return errorsJoin(tx.PutClient(c),
				tx.PutConsent(&Consent{Subject: "alice", ClientID: "golden", Scope: "mcp",
					GrantedAt: t0}),
				tx.PutRefreshToken(testRefresh("rt", "g", "golden")),
				tx.PutSigningKey(&SigningKey{ID: "k", Algorithm: "ES256",
					PrivateKey: []byte{0x30, 0x01}, CreatedAt: t0}))
		},
		func(tx *Txn) error {
			return errorsJoin(tx.DeleteRefreshToken("rt"), tx.DeleteConsent("alice", "golden"),
				tx.PutRevocation(&Revocation{Key: "grant:g", ExpiresAt: t0.Add(time.Hour),
					CreatedAt: t0}))
		},
	}
	for _, step := range steps {
		mtx := db.Txn(true)
		mtx.TrackChanges()
		if err := step(&Txn{tx: mtx}); err != nil {
			t.Fatal(err)
		}
		out = append(out, mtx.Changes())
		mtx.Commit()
	}
	return out
}

// goldenSegment encodes the golden transactions as a log segment.
func goldenSegment(t testing.TB) []byte {
	t.Helper()
	b := segHeader{version: walVersion, firstSeq: 1}.append(nil)
	var crc uint32
	for i, ch := range goldenChanges(t) {
		payload, err := encodeBatch(ch)
		if err != nil {
			t.Fatal(err)
		}
		b, crc = appendRecord(b, recBatch, batchVersion, uint64(i+1), crc, payload)
	}
	return b
}

func goldenState(t testing.TB) *memdb.MemDB {
	t.Helper()
	db := newDB()
	tx := db.Txn(true)
	for _, ch := range goldenChanges(t) {
		for _, c := range ch {
			var err error
			if c.After != nil {
				err = tx.Insert(c.Table, c.After)
			} else {
				err = tx.Delete(c.Table, c.Before)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	tx.Commit()
	return db
}

func checkGolden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("encoding differs from %s: the on-disk format changed; bump its version "+
			"and keep reading the old one (or go test -update for a deliberate change)\n"+
			"want %x\n got %x", path, want, got)
	}
	return want
}

func TestGoldenSegment(t *testing.T) {
	seg := goldenSegment(t)
	want := checkGolden(t, "segment-v1.golden", seg)
	if *updateGolden {
		writeFuzzCorpus(t, seg)
	}

	// The committed bytes still decode to the same state.
	db := newDB()
	tx := db.Txn(true)
	sc := scanSegment(want, 1, func(_ uint64, _ uint32, _ uint8, p []byte) error {
		entries, err := decodeBatch(p)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := apply(layers{tx: tx}, e); err != nil {
				return err
			}
		}
		return nil
	})
	if sc.damage != nil || sc.records != 2 {
		t.Fatalf("golden segment: %d records, damage %+v", sc.records, sc.damage)
	}
	tx.Commit()
	if diff := cmp.Diff(goldenDBState(t), dbState(layers{tx: db.Txn(false)})); diff != "" {
		t.Errorf("golden segment decodes to (-want +got):\n%s", diff)
	}
}

func TestGoldenSnapshot(t *testing.T) {
	var buf bytes.Buffer
	info := snapInfo{seq: 2, crc: 0x01020304}
	if _, err := writeSnapshotTo(&buf, layers{tx: goldenState(t).Txn(false)}, info, nil, nil); err != nil {
		t.Fatal(err)
	}
	want := checkGolden(t, "snapshot-v2.golden", buf.Bytes())

	path := filepath.Join(t.TempDir(), "snap")
	os.WriteFile(path, want, 0o600)
	db, got, err := readSnapshot(OSFS{}, path)
	if err != nil {
		t.Fatal(err)
	}
	if got != info {
		t.Errorf("golden snapshot covers %+v, want %+v", got, info)
	}
	if diff := cmp.Diff(goldenDBState(t), baseState(db)); diff != "" {
		t.Errorf("golden snapshot decodes to (-want +got):\n%s", diff)
	}
}

// TestGoldenSnapshotV1 reads a snapshot of format version 1 (before
// Consent.Resource), which every later version must keep reading.
func TestGoldenSnapshotV1(t *testing.T) {
	db, got, err := readSnapshot(OSFS{}, filepath.Join("testdata", "snapshot-v1.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (snapInfo{seq: 2, crc: 0x01020304}); got != want {
		t.Errorf("v1 snapshot covers %+v, want %+v", got, want)
	}
	if diff := cmp.Diff(goldenDBState(t), baseState(db)); diff != "" {
		t.Errorf("v1 snapshot decodes to (-want +got):\n%s", diff)
	}
}

// goldenDBState is the state of the golden transactions.
func goldenDBState(t testing.TB) state {
	t.Helper()
	return dbState(layers{tx: goldenState(t).Txn(false)})
}

// baseState is the state of a base alone.
func baseState(b *base) state { return dbState(layers{base: b, tx: newDB().Txn(false)}) }

func dbState(tx layers) state {
	return state{
		Clients:  all[Client](tx, tableClients, indexID),
		Codes:    all[AuthCode](tx, tableCodes, indexID),
		Refresh:  all[RefreshToken](tx, tableRefreshTokens, indexID),
		Consents: all[Consent](tx, tableConsents, indexID),
		Keys:     signingKeys(tx),
		Users:    all[User](tx, tableUsers, indexID),
		Revs:     all[Revocation](tx, tableRevocations, indexID),
	}
}

// writeFuzzCorpus rewrites the committed seed corpus of FuzzScanSegment.
func writeFuzzCorpus(t *testing.T, seg []byte) {
	zeroTail := append(bytes.Clone(seg), make([]byte, 64)...)
	seeds := map[string][]byte{
		"valid":     seg,
		"cut":       seg[:len(seg)-7],
		"zero-tail": zeroTail,
		"header":    seg[:segHeaderSize],
		"flipped":   func() []byte { b := bytes.Clone(seg); b[60] ^= 1; return b }(),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzScanSegment")
	os.MkdirAll(dir, 0o755)
	for name, b := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzScanSegment feeds arbitrary bytes to the log decoder: it must never
// panic, and whatever it accepts must frame back to the same bytes.
func FuzzScanSegment(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		first := uint64(1)
		if h, err := parseSegHeader(data); err == nil {
			first = h.firstSeq
		}
		tx := newDB().Txn(true)
		defer tx.Abort()
		type rec struct {
			seq     uint64
			ver     uint8
			payload []byte
		}
		var recs []rec
		sc := scanSegment(data, first, func(seq uint64, _ uint32, ver uint8, p []byte) error {
			entries, err := decodeBatch(p)
			if err != nil {
				return err
			}
			for _, e := range entries {
				if err := apply(layers{tx: tx}, e); err != nil {
					return err
				}
			}
			recs = append(recs, rec{seq, ver, p})
			return nil
		})
		if sc.damage == nil && sc.end != int64(len(data)) {
			t.Fatalf("no damage reported, but the scan stopped at %d of %d", sc.end, len(data))
		}
		if sc.end < segHeaderSize {
			return
		}
		b := sc.header.append(nil)
		crc := sc.header.prevCRC
		for _, r := range recs {
			b, crc = appendRecord(b, recBatch, r.ver, r.seq, crc, r.payload)
		}
		if !bytes.Equal(b, data[:sc.end]) {
			t.Fatalf("accepted records do not frame back to the same bytes")
		}
	})
}
