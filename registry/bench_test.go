package registry

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRegister measures Updates that each register one client, with 1,
// 8 and 64 concurrent writers, with group commit and with one fsync per
// write. fsyncs/op shows how many writes share an fsync.
func BenchmarkRegister(b *testing.B) {
	for _, mode := range []struct {
		name    string
		noGroup bool
	}{{"group", false}, {"fsync-each", true}} {
		for _, writers := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode.name, writers), func(b *testing.B) {
				var fsyncs atomic.Int64
				opts := Options{
					NoGroupCommit: mode.noGroup,
					OnFsync:       func(time.Duration) { fsyncs.Add(1) },
					Logger:        testLogger(b),
				}
				s, _ := openTest(b, opts)
				clients := make([]*Client, 1024)
				for i := range clients {
					clients[i] = benchClient(rand.New(rand.NewPCG(uint64(i), 1)))
				}
				var next atomic.Int64
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for range writers {
					wg.Go(func() {
						for {
							i := next.Add(1)
							if i > int64(b.N) {
								return
							}
							c := clients[i%int64(len(clients))].Copy()
							c.ID = fmt.Sprint(c.ID, i)
							err := s.Update(context.Background(), func(tx *Txn) error {
								return tx.PutClient(c)
							})
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
				b.ReportMetric(float64(fsyncs.Load())/float64(b.N), "fsyncs/op")
			})
		}
	}
}

// BenchmarkFsync measures the disk: append 256 bytes to a file and fsync it.
func BenchmarkFsync(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "f"), os.O_WRONLY|os.O_CREATE|os.O_APPEND,
		0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 256)
	start := time.Now()
	for b.Loop() {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "fsyncs/s")
}

// benchClient returns a client shaped like a real dynamic registration.
func benchClient(r *rand.Rand) *Client {
	return &Client{
		ID:                      randString(r, 16),
		SecretHash:              hex.EncodeToString(randBytes(r, 32)),
		RedirectURIs:            []string{"https://claude.ai/api/mcp/auth_callback"},
		TokenEndpointAuthMethod: "client_secret_post",
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		Name:                    "Claude",
		Scope:                   "mcp:tools",
		RegistrationTokenHash:   hex.EncodeToString(randBytes(r, 32)),
		CreatedAt:               time.Unix(1_790_000_000+r.Int64N(1e7), 0).UTC(),
	}
}

func benchRefresh(r *rand.Rand, clientID string) *RefreshToken {
	created := time.Unix(1_790_000_000+r.Int64N(1e7), 0).UTC()
	return &RefreshToken{
		Hash:      hex.EncodeToString(randBytes(r, 32)),
		GrantID:   randString(r, 16),
		ClientID:  clientID,
		Subject:   "user-" + randString(r, 6),
		Scope:     "mcp:tools",
		Resource:  "https://mcp.example.com/mcp",
		CreatedAt: created,
		ExpiresAt: created.Add(30 * 24 * time.Hour),
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randString(r *rand.Rand, n int) string {
	return base64.RawURLEncoding.EncodeToString(randBytes(r, n))
}

var (
	benchDirsMu sync.Mutex
	benchDirs   = map[int]string{}
)

// TestMain removes the shared benchmark directories when the tests end.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, dir := range benchDirs {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// benchDir returns a data directory holding a snapshot of n clients, each
// with one refresh token, and a short log after it. It is built once per
// size and process, straight in the snapshot format (sorted like a store
// writes it), shared by the benchmarks and removed by TestMain.
func benchDir(b *testing.B, n int) string {
	b.Helper()
	benchDirsMu.Lock()
	defer benchDirsMu.Unlock()
	if dir, ok := benchDirs[n]; ok {
		return dir
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("registry-bench-%d-", n))
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(uint64(n), 2))
	clients := make([]*Client, n)
	tokens := make([]*RefreshToken, n)
	for i := range clients {
		clients[i] = benchClient(r)
		tokens[i] = benchRefresh(r, clients[i].ID)
	}
	slices.SortFunc(clients, func(a, b *Client) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(tokens, func(a, b *RefreshToken) int { return strings.Compare(a.Hash, b.Hash) })

	const seq = 1000
	f, err := os.OpenFile(filepath.Join(dir, snapshotName(seq)), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	sw := newSnapWriter(f, snapInfo{seq: seq, crc: 0})
	for _, c := range clients {
		sw.add(codecByTable[tableClients], c)
	}
	for _, t := range tokens {
		sw.add(codecByTable[tableRefreshTokens], t)
	}
	if err := sw.finish(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	// The segment that continues the snapshot, as a store leaves one.
	h := segHeader{version: walVersion, firstSeq: seq + 1, prevCRC: 0}
	if err := os.WriteFile(filepath.Join(dir, segmentName(seq+1)), h.append(nil),
		0o600); err != nil {
		b.Fatal(err)
	}
	benchDirs[n] = dir
	// A short log after the snapshot, replayed on every open.
	s, err := Open(context.Background(), dir, Options{Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		err := s.Update(context.Background(), func(tx *Txn) error {
			c := benchClient(r)
			c.ID = fmt.Sprint("log-", i)
			return tx.PutClient(c)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	return dir
}

// cpuTime returns the CPU time used by the process, all threads included.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkRehydrate measures Open on a data directory of n clients each
// with one refresh token: load the snapshot, replay the log. heap-MB is the
// heap in use once open (the index), peak-sys-MB the memory the process
// took from the OS by then.
func BenchmarkRehydrate(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			dir := benchDir(b, n)
			before := heapInuse()
			var heap uint64
			cpu0 := cpuTime()
			for b.Loop() {
				s, err := Open(context.Background(), dir, Options{Logger: testLogger(b)})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if got := len(s.Clients()); got != n+100 {
					b.Fatalf("opened %d clients, want %d", got, n+100)
				}
				heap = heapInuse() - before
				s.Close()
				b.StartTimer()
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			// CPU time includes the untimed checks; it is less sensitive
			// than wall time to other processes on a shared machine.
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(float64(heap)/(1<<20), "heap-MB")
			b.ReportMetric(float64(m.Sys)/(1<<20), "peak-sys-MB")
		})
	}
}

// BenchmarkSnapshotDecode1M measures reading and decoding the snapshot of
// BenchmarkRehydrate's million clients without building the index: the part
// of rehydration that the snapshot encoding decides.
func BenchmarkSnapshotDecode1M(b *testing.B) {
	dir := benchDir(b, 1_000_000)
	l, err := listDir(OSFS{}, dir)
	if err != nil || len(l.snapshots) == 0 {
		b.Fatalf("no snapshot in %s: %v", dir, err)
	}
	path := filepath.Join(dir, snapshotName(l.snapshots[len(l.snapshots)-1]))
	for b.Loop() {
		_, n, err := scanSnapshot(OSFS{}, path, func(*tableCodec, any) error { return nil })
		if err != nil || n != 2_000_000 {
			b.Fatalf("scanned %d records: %v", n, err)
		}
	}
}

// BenchmarkSnapshot1M measures writing a snapshot of a million clients, each
// with one refresh token, while the store stays open, and reports apart the
// time to rebuild the base from it that follows (rebase-s).
func BenchmarkSnapshot1M(b *testing.B) {
	dir := benchDir(b, 1_000_000)
	s, err := Open(context.Background(), dir, Options{Logger: testLogger(b),
		KeepSnapshots: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var rebase time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		err := s.Update(context.Background(), func(tx *Txn) error {
			return tx.PutRevocation(&Revocation{Key: fmt.Sprint("jti:", i), ExpiresAt: t0})
		})
		if err != nil {
			b.Fatal(err)
		}
		s.snapMu.Lock()
		b.StartTimer()
		st, err := s.snapshot(context.Background())
		b.StopTimer()
		if err != nil || st.tx == nil {
			b.Fatalf("snapshot: %v (written: %v)", err, st.tx != nil)
		}
		start := time.Now()
		err = s.rebase(st)
		rebase += time.Since(start)
		s.snapMu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(rebase.Seconds()/float64(b.N), "rebase-s")
}

// BenchmarkRead measures the ext_authz hot path on a store of 100k clients.
func BenchmarkRead(b *testing.B) {
	dir := benchDir(b, 100_000)
	s, err := Open(context.Background(), dir, Options{Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ids := make([]string, 0, 1024)
	for _, c := range s.Clients()[:1024] {
		ids = append(ids, c.ID)
	}
	keys := make([]string, 1024)
	for i := range keys {
		sum := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		keys[i] = "jti:" + hex.EncodeToString(sum[:8])
	}
	b.Run("Client", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if s.Client(ids[i%len(ids)]) == nil {
				b.Fatal("client not found")
			}
			i++
		}
	})
	b.Run("Revoked", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if s.Revoked(keys[i%len(keys)]) {
				b.Fatal("revoked")
			}
			i++
		}
	})
	b.Run("Client-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				s.Client(ids[i%len(ids)])
				i++
			}
		})
	})
}
