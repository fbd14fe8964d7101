package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
)

// Report is what Verify found in a data directory.
type Report struct {
	Dir      string       `json:"dir"`
	Files    []FileReport `json:"files"`
	Problems []Problem    `json:"problems"`
}

// FileReport describes one snapshot or log segment.
type FileReport struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"` // "snapshot" or "segment"
	Size     int64  `json:"size"`
	FirstSeq uint64 `json:"first_seq"` // segments: first record
	LastSeq  uint64 `json:"last_seq"`  // last record that verified, or covered
	Records  int    `json:"records"`
}

// Problem is damage found by Verify. Torn marks damage that Open cuts off
// by itself (a torn final write); any other Problem makes Open refuse.
type Problem struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Error  string `json:"error"`
	Torn   bool   `json:"torn,omitempty"`
}

// OK reports whether Verify found nothing that would stop Open.
func (r Report) OK() bool {
	for _, p := range r.Problems {
		if !p.Torn {
			return false
		}
	}
	return true
}

// Verify checks every snapshot and every log record of the data directory
// dir: checksums, framing, sequence numbers, the chain across segments and
// the decoding of every entry. It changes nothing and takes no lock, so it
// may run beside a live store (whose newest segment can then end in a
// record being written, reported as torn). The error is for a directory
// that cannot be read or holds no registry (ErrNoRegistry); damage is
// reported in the Report.
func Verify(dir string) (Report, error) {
	return verify(OSFS{}, dir)
}

func verify(fsys FS, dir string) (Report, error) {
	rep := Report{Dir: dir}
	if err := checkRegistryDir(fsys, dir); err != nil {
		return rep, err
	}
	l, err := listDir(fsys, dir)
	if err != nil {
		return rep, err
	}
	problem := func(name string, off int64, err error, torn bool) {
		rep.Problems = append(rep.Problems, Problem{
			File: joinDir(dir, name), Offset: off, Error: err.Error(), Torn: torn,
		})
	}
	for _, name := range l.temps {
		problem(name, 0, errors.New("leftover of an interrupted snapshot or segment "+
			"creation (Open removes it)"), true)
	}
	for _, seq := range l.snapshots {
		name := snapshotName(seq)
		fr := FileReport{Name: name, Kind: "snapshot"}
		var rc recordCheck
		info, n, err := scanSnapshot(fsys, joinDir(dir, name), func(c *tableCodec, obj any) error {
			_, err := rc.key(c.table, obj)
			return err
		})
		var fe *FileError
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // removed by a live store's compaction since the listing
		case errors.As(err, &fe):
			problem(name, fe.Offset, fe.Err, false)
		case err != nil:
			return rep, err
		default:
			fr.LastSeq, fr.Records = info.seq, n
			if info.seq != seq {
				problem(name, 16, fmt.Errorf("header covers sequence %d, file name %d",
					info.seq, seq), false)
			}
		}
		fr.Size = fileSize(fsys, joinDir(dir, name))
		rep.Files = append(rep.Files, fr)
	}

	var prev *segScan
	for i, first := range l.segments {
		name := segmentName(first)
		data, err := readFile(fsys, joinDir(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed by a live store's compaction since the listing
		}
		if err != nil {
			return rep, err
		}
		sc := scanSegment(data, first, func(_ uint64, _ uint32, _ uint8, p []byte) error {
			return checkBatch(p)
		})
		fr := FileReport{Name: name, Kind: "segment", Size: int64(len(data)), FirstSeq: first,
			LastSeq: sc.lastSeq, Records: sc.records}
		rep.Files = append(rep.Files, fr)
		if d := sc.damage; d != nil {
			problem(name, d.off, d.err, d.torn && i == len(l.segments)-1)
		}
		if prev != nil && (sc.damage == nil || sc.damage.off >= segHeaderSize) {
			if sc.header.firstSeq != prev.lastSeq+1 || sc.header.prevCRC != prev.lastCRC {
				problem(name, 16, fmt.Errorf("segment does not continue the one before: %w",
					ErrCorrupt), false)
			}
		}
		prev = &sc
	}
	if len(l.snapshots) > 0 && len(l.segments) > 0 && l.segments[0] > l.snapshots[0]+1 {
		problem(segmentName(l.segments[0]), 0, fmt.Errorf(
			"log starts at %d, after the oldest snapshot (%d): it cannot be a fallback",
			l.segments[0], l.snapshots[0]), true)
	}
	if len(l.snapshots) == 0 && len(l.segments) > 0 && l.segments[0] != 1 {
		problem(segmentName(l.segments[0]), 0, fmt.Errorf(
			"no snapshot and the log starts at %d: %w", l.segments[0], ErrCorrupt), false)
	}
	rep.checkLoad(fsys, dir)
	return rep, nil
}

// checkLoad loads dir as Open would, without changing it, and reports why
// Open would refuse it unless a problem at the same place says so already:
// a snapshot that does not match the log, or records that neither a
// snapshot nor the log holds.
func (rep *Report) checkLoad(fsys FS, dir string) {
	discard := slog.New(slog.DiscardHandler)
	s := &Store{opts: Options{Logger: discard}.withDefaults(), fs: fsys, dir: dir,
		readOnly: true, log: discard}
	err := s.load(context.Background())
	rep.Problems = append(rep.Problems, s.passedOver...)
	if err == nil || errors.Is(err, fs.ErrNotExist) { // a live store compacted
		return
	}
	p := Problem{File: dir, Error: err.Error()}
	var fe *FileError
	if errors.As(err, &fe) {
		p = Problem{File: fe.Path, Offset: fe.Offset, Error: fe.Err.Error()}
	}
	for _, q := range rep.Problems {
		if q.File == p.File && q.Offset == p.Offset && !q.Torn {
			return
		}
	}
	rep.Problems = append(rep.Problems, p)
}

// checkBatch decodes every entry of a batch payload.
func checkBatch(payload []byte) error {
	entries, err := decodeBatch(payload)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	tx := newDB().Txn(true)
	defer tx.Abort()
	for _, e := range entries {
		c := codecByKind[e.kind]
		if e.kind == c.put {
			if _, err := c.decode(e.body); err != nil {
				return fmt.Errorf("%w: decoding %s: %w", ErrCorrupt, c.table, err)
			}
			continue
		}
		var key []string
		if err := json.Unmarshal(e.body, &key); err != nil {
			return fmt.Errorf("%w: decoding %s delete: %w", ErrCorrupt, c.table, err)
		}
		if _, err := c.keyObj(key); err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	return nil
}

func fileSize(fsys FS, path string) int64 {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Dump writes the state held in the data directory dir to w as one JSON
// object for jq: the log sequence it reflects and every table. Secrets and
// their hashes (client secret and registration token hashes, password
// hashes, private keys, code and refresh token hashes) appear only as short
// fingerprints. It changes nothing and takes no lock; a torn final record is
// left out, and other damage makes it fail as Open would.
func Dump(dir string, w io.Writer) error {
	s, err := OpenReadOnly(context.Background(), dir, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("dumping %s: %w", dir, err)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(dumpState(s.layers(), s.durable.seq)); err != nil {
		return fmt.Errorf("dumping %s: %w", dir, err)
	}
	return nil
}

type dumpedKey struct {
	*SigningKey
	PrivateKey string `json:"private_key"`
}

type dump struct {
	Seq           uint64          `json:"seq"`
	Clients       []*Client       `json:"clients"`
	Codes         []*AuthCode     `json:"codes"`
	RefreshTokens []*RefreshToken `json:"refresh_tokens"`
	Consents      []*Consent      `json:"consents"`
	SigningKeys   []dumpedKey     `json:"signing_keys"`
	Users         []*User         `json:"users"`
	Revocations   []*Revocation   `json:"revocations"`
}

func dumpState(st layers, seq uint64) dump {
	d := dump{Seq: seq, Revocations: all[Revocation](st, tableRevocations, indexID)}
	d.Consents = all[Consent](st, tableConsents, indexID)
	for _, c := range all[Client](st, tableClients, indexID) {
		c = c.Copy()
		c.SecretHash = hashFingerprint(c.SecretHash)
		c.RegistrationTokenHash = hashFingerprint(c.RegistrationTokenHash)
		d.Clients = append(d.Clients, c)
	}
	for _, c := range all[AuthCode](st, tableCodes, indexID) {
		c = c.Copy()
		c.Hash = hashFingerprint(c.Hash)
		d.Codes = append(d.Codes, c)
	}
	for _, r := range all[RefreshToken](st, tableRefreshTokens, indexID) {
		r = r.Copy()
		r.Hash = hashFingerprint(r.Hash)
		d.RefreshTokens = append(d.RefreshTokens, r)
	}
	for _, k := range signingKeys(st) {
		d.SigningKeys = append(d.SigningKeys,
			dumpedKey{SigningKey: k, PrivateKey: fingerprint(string(k.PrivateKey))})
	}
	for _, u := range all[User](st, tableUsers, indexID) {
		u = u.Copy()
		u.PasswordHash = fingerprint(u.PasswordHash)
		d.Users = append(d.Users, u)
	}
	return d
}

// Compact opens the data directory dir (taking its lock, so the server must
// be stopped), writes a snapshot of its state and removes the snapshots and
// log segments it no longer needs.
func Compact(ctx context.Context, dir string) error {
	if err := checkRegistryDir(OSFS{}, dir); err != nil {
		return err
	}
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		return err
	}
	err = s.Snapshot(ctx)
	if err == nil {
		s.snapMu.Lock()
		err = s.compactFiles()
		s.snapMu.Unlock()
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("compacting %s: %w", dir, err)
	}
	return nil
}
