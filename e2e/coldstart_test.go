package e2e

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/loader/sqlload"
	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
)

// coldStartEntries is the size of the seed scenario: a million entries in
// the durable tier. Under the race detector, which makes this machine's
// work several times slower, the test uses a tenth of it;
// BenchmarkColdStart always runs the full size.
var coldStartEntries = map[bool]int{false: 1_000_000, true: 100_000}[raceEnabled]

// coldStart is the seed scenario on real processes: a bbolt file full of
// entries, a memcached (512 MB, one worker thread) that will be killed and
// restarted empty, and MariaDB behind both, with the chain watching
// memcached for restarts and warming it by itself.
type coldStart struct {
	mc     *testenv.MemcachedServer
	db     *testenv.Database
	mcTier *memcached.Tier
	disk   *boltdb.Store
	cache  *tier.Cache
	n      int
}

func coldStartKey(i int) string { return fmt.Sprintf("article:%07d", i) }

// coldStartValue is entry i's 100-byte value.
func coldStartValue(i int) []byte { return value(i, 100) }

// newColdStart builds the file with n entries, then the chain, warming
// memcached by itself after a restart with autoWarmup unless it is nil.
// Every hotEvery-th key is written a second time after all the others,
// which makes those keys the most recently used (0: no hot set). mcOpts
// are added to the memcached tier's options.
func newColdStart(tb testing.TB, n, hotEvery int, autoWarmup []tier.WarmupOption, mcOpts ...memcached.Option) *coldStart {
	tb.Helper()
	cs := &coldStart{mc: testenv.Memcached(tb, testenv.WithMemoryMB(512)), db: testenv.MySQL(tb), n: n}
	mustExec(tb, cs.db.DB, "CREATE TABLE articles (id VARBINARY(64) NOT NULL PRIMARY KEY, body BLOB NOT NULL)")
	path := filepath.Join(tb.TempDir(), "cache.db")
	buildDurable(tb, path, n, hotEvery)

	var err error
	cs.mcTier, err = memcached.New([]string{cs.mc.Addr}, append([]memcached.Option{memcached.WithRestartDetection(50 * time.Millisecond),
		memcached.WithTimeout(testenv.Timeout), memcached.WithFailureLimit(testenv.FailureLimit)}, mcOpts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	if cs.disk, err = boltdb.Open(path); err != nil {
		tb.Fatal(err)
	}
	src, err := sqlload.New(cs.db.DB, "SELECT id, body FROM articles WHERE id IN (?)")
	if err != nil {
		tb.Fatal(err)
	}
	opts := []tier.Option{
		tier.WithTier(cs.mcTier, 10*time.Minute),
		tier.WithTier(cs.disk, 24*time.Hour),
		tier.WithNegativeTTL(30 * time.Second),
	}
	if autoWarmup != nil {
		opts = append(opts, tier.WithAutoWarmup(autoWarmup...))
	}
	cs.cache, err = tier.New(src, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := cs.cache.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	// Detection compares with what it saw last: let it see the node once.
	waitFor(tb, "a first restart check", func() bool {
		c := cs.mcTier.Counters()
		return c["restart_checks"] > c["restart_check_errors"]
	})
	return cs
}

// buildDurable writes n entries through the store's own batched writer,
// without fsync: how a test fills a file fast, not how a service does.
func buildDurable(tb testing.TB, path string, n, hotEvery int) {
	tb.Helper()
	disk, err := boltdb.Open(path, boltdb.WithNoSync(true), boltdb.WithQueueSize(n), boltdb.WithGCInterval(0))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	expires := time.Now().Add(24 * time.Hour)
	put := func(i int) {
		if err := disk.Set(ctx, coldStartKey(i), tier.Entry{Value: coldStartValue(i), Expires: expires}); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range n {
		put(i)
	}
	if err := disk.Flush(ctx); err != nil {
		tb.Fatal(err)
	}
	for i := 0; hotEvery > 0 && i < n; i += hotEvery {
		put(i)
	}
	if err := disk.Close(); err != nil {
		tb.Fatal(err)
	}
}

// waitWarmup waits for the automatic warmup number run to end, and
// returns its progress.
func (cs *coldStart) waitWarmup(tb testing.TB, run int64) tier.WarmupProgress {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		w := cs.cache.Stats().Warmup
		if w.AutoRuns >= run && w.Last.Done {
			return w.Last
		}
		if time.Now().After(deadline) {
			tb.Fatalf("automatic warmup %d not done within 5 minutes: %+v", run, w)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestColdStartRefillsMemcachedFromDisk is the seed scenario: memcached is
// killed and restarted empty under a chain whose durable tier holds every
// entry; the chain notices by itself and refills it, and afterwards every
// key is a memcached hit without one SQL statement.
func TestColdStartRefillsMemcachedFromDisk(t *testing.T) {
	cs := newColdStart(t, coldStartEntries, 0, []tier.WarmupOption{})
	ctx := context.Background()
	selects := cs.db.Selects(t)

	cs.mc.Restart()
	p := cs.waitWarmup(t, 1)
	t.Logf("warmup of %d entries: %v, %.0f entries/s", cs.n, p.Elapsed.Round(time.Millisecond), p.Rate)
	if p.Err != nil || p.Written != int64(cs.n) || p.Failed != 0 || p.Scanned != int64(cs.n) {
		t.Fatalf("warmup = %+v, want all %d written", p, cs.n)
	}
	if w := cs.cache.Stats().Warmup; w.Restarts != 1 || w.AutoRuns != 1 {
		t.Errorf("restarts seen %d, automatic warmups %d; want 1 and 1", w.Restarts, w.AutoRuns)
	}

	// Every key is in memcached, with its value.
	const batch = 1000
	keys := make([]string, 0, batch)
	for lo := 0; lo < cs.n; lo += batch {
		keys = keys[:0]
		for i := lo; i < min(lo+batch, cs.n); i++ {
			keys = append(keys, coldStartKey(i))
		}
		m, err := cs.mcTier.GetMulti(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != len(keys) {
			t.Fatalf("memcached holds %d of keys %d..%d", len(m), lo, lo+len(keys)-1)
		}
		for i, k := range keys {
			if e := m[k]; !bytes.Equal(e.Value, coldStartValue(lo+i)) {
				t.Fatalf("%s = %q", k, e.Value)
			}
		}
	}
	// Through the chain: memcached hits, nothing loaded.
	before := cs.cache.Stats()
	sample := make([]string, 0, 10_000)
	for i := 0; i < cs.n; i += cs.n / 10_000 {
		sample = append(sample, coldStartKey(i))
	}
	if m, err := cs.cache.GetMulti(ctx, sample); err != nil || len(m) != len(sample) {
		t.Fatalf("GetMulti of %d keys: %d, %v", len(sample), len(m), err)
	}
	d := cs.cache.Stats().Sub(before)
	if d.Tiers[0].Hits != int64(len(sample)) || d.Loader.Statements != 0 {
		t.Errorf("memcached hits %d of %d, loader statements %d", d.Tiers[0].Hits, len(sample), d.Loader.Statements)
	}
	if n := cs.db.Selects(t) - selects; n != 0 {
		t.Errorf("MariaDB ran %d SELECTs across the restart and the refill, want 0", n)
	}

	// Safe to run again: nothing is written twice.
	again, err := cs.cache.Warmup(ctx)
	if err != nil || again.Written != 0 || again.Present != int64(cs.n) {
		t.Errorf("second warmup = %+v, %v; want all %d present, none written", again, err, cs.n)
	}
}
