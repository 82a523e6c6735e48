package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	bolt "go.etcd.io/bbolt"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
)

// benchPool is the raw gomemcache client's idle-connection pool: enough
// that it never dials under the benchmarks' concurrency. The Tier pipelines
// on its default number of connections per node.
const benchPool = 64

// hitBench is a chain whose memcached already holds key, and a raw
// gomemcache client holding an item of the same size under a key of the
// same length, on the same memcached (started with -t 1, as
// docs/benchmarks.md explains).
type hitBench struct {
	cache  *tier.Cache
	raw    *memcache.Client
	key    string
	rawKey string
}

func newHitBench(b *testing.B) *hitBench {
	b.Helper()
	mc := testenv.Memcached(b)
	mcTier, err := memcached.New([]string{mc.Addr + ":1"})
	if err != nil {
		b.Fatal(err)
	}
	disk, err := boltdb.Open(filepath.Join(b.TempDir(), "c.db"))
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	src := tier.LoaderFunc(func(ctx context.Context, keys []string) (map[string][]byte, error) {
		return map[string][]byte{keys[0]: value}, nil
	})
	cache, err := tier.New(src, tier.WithTier(mcTier, time.Hour), tier.WithTier(disk, time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close() })
	h := &hitBench{cache: cache, raw: memcache.New(mc.Addr), key: "article:000042", rawKey: "article:000043"}
	h.raw.MaxIdleConns = benchPool
	if _, err := cache.Get(context.Background(), h.key); err != nil {
		b.Fatal(err)
	}
	// Same item size on the wire: the chain's value plus its envelope.
	item := tier.EncodeEntry(tier.Entry{Value: value, Expires: time.Now().Add(time.Hour)})
	if err := h.raw.Set(&memcache.Item{Key: h.rawKey, Value: item}); err != nil {
		b.Fatal(err)
	}
	return h
}

func (h *hitBench) chainGet(b *testing.B) {
	if _, err := h.cache.Get(context.Background(), h.key); err != nil {
		b.Fatal(err)
	}
}

func (h *hitBench) rawGet(b *testing.B) {
	if _, err := h.raw.Get(h.rawKey); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkGetHit is a Get answered by memcached, beside a raw gomemcache
// Get of an item of the same size. Compare with -count 10 and benchstat.
func BenchmarkGetHit(b *testing.B) {
	h := newHitBench(b)
	b.Run("tiercache", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h.chainGet(b)
		}
		if misses := h.cache.Stats().Tiers[0].Misses; misses > 1 {
			b.Fatalf("%d memcached misses: not measuring hits", misses)
		}
	})
	b.Run("gomemcache", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h.rawGet(b)
		}
	})
}

// BenchmarkGetHitInterleaved alternates a chain Get and a raw gomemcache Get
// in one loop, so both see the same machine at the same moment, and reports
// each side's median and their ratio (chain / raw).
func BenchmarkGetHitInterleaved(b *testing.B) {
	h := newHitBench(b)
	chain, raw := h.interleave(b)
	c50, r50 := percentile(chain, 50), percentile(raw, 50)
	b.ReportMetric(float64(c50.Nanoseconds()), "chain-p50-ns")
	b.ReportMetric(float64(r50.Nanoseconds()), "raw-p50-ns")
	b.ReportMetric(float64(c50)/float64(r50), "p50-ratio")
	b.ReportMetric(float64(percentile(chain, 99))/float64(percentile(raw, 99)), "p99-ratio")
}

// BenchmarkGetHitParallel is 32 goroutines of memcached hits, chain and raw,
// with the same pool size.
func BenchmarkGetHitParallel(b *testing.B) {
	h := newHitBench(b)
	for _, side := range []struct {
		name string
		get  func(*testing.B)
	}{{"tiercache", h.chainGet}, {"gomemcache", h.rawGet}} {
		b.Run(side.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					side.get(b)
				}
			})
		})
	}
}

// BenchmarkGetDurableHit is a Get that misses memcached and is answered by
// bbolt. memcached's TTL in the chain is a nanosecond, so the backfill is
// already expired when it would be sent and never lands: every Get takes
// the same path. Beside it, the raw work that path stands for: a gomemcache
// miss plus a bbolt read.
func BenchmarkGetDurableHit(b *testing.B) {
	mc := testenv.Memcached(b)
	mcTier, err := memcached.New([]string{mc.Addr + ":1"})
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "c.db")
	disk, err := boltdb.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const keys = 100_000
	value := make([]byte, 100)
	for i := 0; i < keys; i++ {
		disk.Set(ctx, fmt.Sprintf("article:%06d", i), tier.Entry{Value: value, Expires: time.Now().Add(time.Hour)})
		if i%5000 == 4999 { // stay under the write queue's bound: nothing dropped
			if err := disk.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := disk.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if d := disk.Counters()["dropped"]; d != 0 {
		b.Fatalf("%d writes dropped while filling the file", d)
	}
	src := tier.LoaderFunc(func(ctx context.Context, keys []string) (map[string][]byte, error) {
		return nil, fmt.Errorf("the source must not be reached")
	})
	cache, err := tier.New(src, tier.WithTier(mcTier, time.Nanosecond), tier.WithTier(disk, time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close() })

	b.Run("tiercache", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := cache.Get(ctx, fmt.Sprintf("article:%06d", i%keys)); err != nil {
				b.Fatal(err)
			}
			i++
		}
		if st := cache.Stats(); st.Tiers[0].Hits > 0 {
			b.Fatalf("%d memcached hits: not measuring the durable path", st.Tiers[0].Hits)
		}
	})
	b.Run("gomemcache-miss+bbolt", func(b *testing.B) {
		raw := memcache.New(mc.Addr)
		raw.MaxIdleConns = benchPool
		db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		db.Update(func(tx *bolt.Tx) error {
			bk, _ := tx.CreateBucketIfNotExists([]byte("b"))
			for i := 0; i < keys; i++ {
				bk.Put([]byte(fmt.Sprintf("article:%06d", i)), value)
			}
			return nil
		})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k := fmt.Sprintf("article:%06d", i%keys)
			if _, err := raw.Get(k); err != memcache.ErrCacheMiss {
				b.Fatalf("raw get: %v", err)
			}
			db.View(func(tx *bolt.Tx) error {
				if tx.Bucket([]byte("b")).Get([]byte(k)) == nil {
					b.Fatal("raw bbolt miss")
				}
				return nil
			})
			i++
		}
	})
}

// interleave runs a chain Get and a raw Get per iteration, alternating which
// goes first, and returns the latencies of each side.
func (h *hitBench) interleave(b *testing.B) (chain, raw []time.Duration) {
	chain = make([]time.Duration, 0, b.N)
	raw = make([]time.Duration, 0, b.N)
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			chain = append(chain, timed(func() { h.chainGet(b) }))
			raw = append(raw, timed(func() { h.rawGet(b) }))
		} else {
			raw = append(raw, timed(func() { h.rawGet(b) }))
			chain = append(chain, timed(func() { h.chainGet(b) }))
		}
		i++
	}
	return chain, raw
}

func timed(f func()) time.Duration {
	t := time.Now()
	f()
	return time.Since(t)
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}
