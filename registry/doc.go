// Package registry keeps mcp-authz's clients, authorization codes, refresh
// tokens, consents, signing keys, users and revocations in an in-memory index
// made durable by a write-ahead log and snapshots.
//
// # Reads and writes
//
// The index has two layers. The base is the state loaded from the newest
// snapshot at Open, frozen: per table, the records in primary key order with
// a hash map from key to record, and a hash map per non-unique index. Over it
// lies the delta, a go-memdb database holding every change made since: a put
// stores the record in the delta; deleting a record the base holds stores a
// tombstone for its key in the delta. A record is the delta's when the delta
// has its key (a tombstone meaning deleted), the base's otherwise; listings
// merge the two in key order. A base is never written, so it needs no locks
// and is shared by every reader and transaction.
//
// After each snapshot the base is rebuilt from the state just written, so
// that records replaced or deleted before it are not held any longer (see
// rebase.go). Changes made after that state are tracked from the moment it
// is taken; the new base is built from the records as the snapshot writes
// them (no second pass, no locks); the new delta is worked out
// from the tracked keys in rounds, each holding the writer lock only to take
// the keys changed so far; the last round holds it to settle the remaining
// few and swap base and delta together for readers and writers. Writers
// pause for the fsync under way, if any, when the snapshot starts and at
// each round, and for the last round's work (microseconds to a few
// milliseconds); readers never wait.
//
// Store reads (Client, Revoked, ...) use a shared memdb read transaction on
// the newest durable delta, over the base: no I/O, no locks, no waiting for
// writers. Records returned are shared and never changed by the store; copy
// them before changing them.
//
// Update runs a function in a write transaction. Writers are serialised and
// combined: each queues its function, and one of them at a time takes every
// function queued (up to 256) and runs them one after the other in one memdb
// write transaction, each seeing the changes of those before it. The Txn
// records the changes each function makes; when a function fails or panics its
// changes are undone before the next runs (memdb has no savepoints), and only
// its Update fails. The changes of each other function are encoded as one log
// record and queued in memory; then the memdb transaction commits once, so the
// next batch builds on it, and the writer role passes to the oldest Update
// queued meanwhile. No writer does I/O. A syncer goroutine takes everything
// queued, writes it (one write per segment), fsyncs, and acknowledges every
// record the fsync covered (group commit): writers arriving while an fsync runs
// share the next one. Only then is the new state published to Store readers and
// does Update return nil. So a Store reader never sees a write that is not
// durable. A Txn, however, sees the writes of earlier Updates that are still
// waiting for their fsync; if that fsync fails, those Updates and every Update
// that read their writes fail together, and the index is rolled back to the
// durable state (a memdb snapshot kept for the purpose). Options.NoGroupCommit
// instead runs one function per batch and writes and fsyncs inside the writer
// lock, before the memdb commit.
//
// A failed write or fsync makes every Update of that round (and any queued
// after it) return an error wrapping ErrUnavailable; the failure is logged
// once, until a write succeeds again. Reads keep working. Before the next
// append the store cuts the log back to the last durable record (removing
// segments begun after it, truncating and fsyncing the segment holding it), so
// a record whose write failed is never replayed. After a failed fsync the
// disk's content is unknown: if the process dies before that cut is made (Close
// makes it too), a write that failed can still be found whole on disk by the
// next Open.
//
// # Files
//
// A data directory (mode 0700; files 0600) holds:
//
//	LOCK                        flock(2)ed by the process using the directory
//	wal-<16 hex digits>.log     log segment; the number is its first sequence
//	snap-<16 hex digits>.snap   snapshot; the number is the last sequence it covers
//	<snapshot or segment>.tmp   one being created (removed by Open)
//	damaged/<name>.<time>       copies of damaged files set aside by Open
//
// Integers are little-endian. Checksums are CRC-32C (Castagnoli).
//
// # Log segments
//
// A segment starts with a 32-byte header:
//
//	0  8  magic "MCPAZWAL"
//	8  4  segment format version (1)
//	12 4  zero
//	16 8  sequence of the first record
//	24 4  chained checksum of the record before the first (0 before sequence 1)
//	28 4  CRC-32C of bytes 0..28
//
// Records follow, each padded with zero bytes to a multiple of 8:
//
//	0  4  payload length n (at most 64 MiB)
//	4  1  record type
//	5  1  record version
//	6  2  zero
//	8  8  sequence number: the previous record's plus one
//	16 4  CRC-32C of bytes 0..16 (the header alone)
//	20 4  chained checksum: CRC-32C of bytes 0..16 and the payload, seeded
//	      with the previous record's chained checksum (as etcd's WAL does)
//	24 n  payload
//
// The header checksum makes the length trustworthy before the payload is
// read; the chained checksum catches a changed, lost, reordered or
// transplanted record. Record types are stable numbers never reused: 1 is a
// batch, one Update. A batch of version 1 holds a uvarint entry count, then
// for each entry a uvarint entry kind, a uvarint body length and the body.
// Entry kinds are stable numbers never reused: odd kinds put a record, whose
// body is its JSON (the struct tags of records.go); even kinds delete one,
// whose body is its primary key as a JSON array of strings.
//
//	1/2 client   3/4 authorization code   5/6 refresh token   7/8 consent
//	9/10 signing key   11/12 user   13/14 revocation
//
// A segment is rolled at Options.SegmentSize (64 MiB). The old segment is
// fsynced before the first byte goes to the new one. A new segment's header
// is written to wal-N.log.tmp, fsynced, renamed into place and the
// directory fsynced, so a segment is never seen without its header: a
// header cut short is damage, not a torn write. Open always appends to a new
// segment (or to the last one if it holds no record).
//
// # Snapshots
//
// A snapshot is a stream: a 32-byte header, then records, then a trailer.
//
//	0  8  magic "MCPAZSNP"
//	8  4  snapshot format version (2; version 1 is still read)
//	12 4  zero
//	16 8  sequence of the last log record covered
//	24 4  chained checksum of that record
//	28 4  CRC-32C of bytes 0..28
//
// Each record is a uvarint entry kind (a put kind above), a uvarint length and
// the record in a positional binary encoding (see bincodec.go: its fields in
// struct order; strings and byte slices length-prefixed, lists
// count-prefixed, times as a presence byte, varint Unix seconds and uvarint
// nanoseconds), chosen because rehydrating a million clients from JSON is
// several times slower. Version 2 appends Consent.Resource to the consent
// record; a version 1 consent ends before it. Tables come in a fixed order, each in primary-key
// order. The trailer is a zero byte (entry kind 0), the record count as 8
// bytes, and the CRC-32C of every byte of the file before it.
//
// A snapshot is taken when the log written since the last one reaches
// Options.SnapshotBytes or Options.SnapshotRecords, or by Store.Snapshot. It
// reads the base and a memdb snapshot of the durable delta, so readers and
// writers go on.
// It is written to snap-N.snap.tmp, fsynced, renamed to snap-N.snap and the
// directory fsynced. Only then are snapshots beyond Options.KeepSnapshots
// (2) removed, followed by every segment whose records are all covered by
// the oldest snapshot kept: the log is kept back to that snapshot so Open can
// fall back to it.
//
// # Crash assumptions
//
// fsync(2) on a file makes its data and size durable; on a directory, the
// entries created, renamed or removed in it. rename(2) is atomic. A crash can
// leave the bytes written since the last completed fsync partly written: the
// file cut short, or 512-byte sectors of it still zero. Beyond that the disk
// returns what was written, or an error; silent corruption is caught by the
// checksums and refused rather than repaired silently.
//
// # Recovery (Open)
//
//  1. Take an exclusive flock on LOCK, or fail naming the directory.
//  2. Remove snap-N.snap.tmp and wal-N.log.tmp files: snapshots and segments
//     interrupted before their rename (no other file is touched).
//  3. Load the newest snapshot whose header, records and whole-file checksum
//     verify, and whose header names the sequence its file name does. A
//     snapshot that does not verify, or that the log contradicts (the record
//     at its sequence has another chained checksum: the log is what was
//     acknowledged), is warned about and the next older one is tried; once
//     the whole directory has loaded, it is moved to damaged/ (a refused Open
//     changes nothing, though a refused repair may leave copies in damaged/).
//     A snapshot of a newer
//     format version is refused. The log must continue the snapshot loaded
//     (with none, start at sequence 1), else Open refuses, naming the
//     damaged snapshot and offset, or the first segment. With Options.Repair
//     the missing records are dropped instead, with a warning naming them:
//     the log after them is replayed on the snapshot loaded (or on nothing),
//     and a snapshot is written before Open returns so the next Open does not
//     meet the gap again; older snapshots, which the log no longer
//     continues, are moved to damaged/.
//  4. Replay the segments from the one holding the record after the
//     snapshot, checking the chain across segments and against the
//     snapshot's checksum.
//  5. A record after the loaded snapshot's last that does not verify in the
//     last segment, with the marks of a torn write (the file ends inside it,
//     a zero-filled tail, or an all-zero sector piece inside it), ends the
//     log: the segment is copied to
//     damaged/ and truncated before it, with one warning naming the file and
//     offset. Records after it were written in the same unfinished fsync
//     window, so none of them was acknowledged.
//  6. Any other damage (a checksum failure without those marks, damage in a
//     segment that is not the last, a break in the sequence or the chain) is
//     refused with an error naming the file and offset (a *FileError wrapping
//     ErrCorrupt). With Options.Repair the segment is copied to damaged/ and
//     truncated before the damage, later segments are moved to damaged/, and
//     what was dropped is logged. Damage in records the loaded snapshot
//     covers is instead passed over, with a warning (nothing acknowledged is
//     lost): a record whose header verifies is skipped, and the records after
//     it are checked against the chained checksum its header stores; any
//     other damage up to the snapshot's last record (a segment header
//     included) is passed over by finding the record after the snapshot as
//     the one that chains from the snapshot's checksum (of several, the one
//     the chain runs furthest from). With none in the segment, the rest of it
//     is passed over only if it ends with the snapshot's last record and
//     zeros, and the next segment must chain from the snapshot; if that
//     record stores another checksum, the snapshot is not this log's and an
//     older one is tried. Open then writes a snapshot, moves the older ones
//     to damaged/ (the log after them is damaged) and removes the segments
//     the snapshot covers.
//     The log must also reach the loaded snapshot's last record (or the
//     segment that chains from it): a log that ends before it lost its end,
//     or the snapshot is not this registry's, and a snapshot with no segment
//     at all after it lost its log (compaction always keeps the last
//     segment). Open refuses both; a repair continues from the snapshot.
//  7. An unknown record type or a newer record, segment or snapshot version
//     is refused (ErrVersion, naming the file, offset and version), even with
//     Repair: an older program must not drop what a newer one wrote.
//  8. After Open, the segments before the one the replay started from, which
//     only a fallback to an older snapshot reads, are checked in the
//     background; damage in them is warned about (Open did not need them).
//  9. When nothing was damaged, leftovers of an interrupted compaction
//     (snapshots beyond the number kept, segments below the oldest snapshot
//     kept) are removed.
//
// Damaged files are always copied or moved aside before being changed, so
// the only good copy of anything is never overwritten.
//
// # Rehydration
//
// Open reads the snapshot on one goroutine and hands its records to another,
// which collects them per table; each table's maps are built on goroutines
// of their own as soon as its last record is read (the snapshot holds the
// tables one after another, each in key order, so the base needs no sorting
// and no per-record tree insert). Then the log after the snapshot is
// replayed into the delta. A million clients each with one refresh token
// load in about 1.6 s on a 2-core machine, against about 12 s when every
// record went through go-memdb's radix trees (four inserts each, some 1–2
// µs apiece); see BenchmarkRehydrate.
//
// Between snapshots, a record replaced or deleted after the base was built
// is held twice (in the base, shadowed, and by the delta) until the next
// snapshot rebuilds the base.
package registry
