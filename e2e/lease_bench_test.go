package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
)

// The leases benchmark: several processes read keys of Zipf popularity
// through chains with a short memcached TTL, so that hot keys keep
// expiring, with and without leases, early refresh and
// stale-while-revalidate. docs/benchmarks.md has the figures and the
// command.
const (
	benchProcs      = 4
	benchGoroutines = 16
	benchKeys       = 1_000
	benchZipfS      = 1.1
	benchTTL        = 2 * time.Second
	benchLoadDelay  = 10 * time.Millisecond // a query that costs more than a point select
	benchDeletes    = 100                   // per second, of Zipf-popular keys, by the first process, in the deletes=100 runs
	benchDuration   = 10 * time.Second
)

// latencyBuckets is the number of buckets of a Get latency histogram: 20
// per decade from 1µs, the last one open-ended.
const latencyBuckets = 20*8 + 1

func latencyBucket(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	return min(int(20*math.Log10(us))+1, latencyBuckets-1)
}

// latencyQuantile returns the upper edge of the bucket holding quantile q
// of hist.
func latencyQuantile(hist []int64, q float64) time.Duration {
	var total int64
	for _, n := range hist {
		total += n
	}
	rank := int64(math.Ceil(q * float64(total)))
	var seen int64
	for i, n := range hist {
		if seen += n; seen >= rank {
			return time.Duration(math.Pow(10, float64(i)/20) * float64(time.Microsecond))
		}
	}
	return 0
}

// bench is a helper's job in the benchmark: Gets of Zipf-distributed keys
// from every goroutine until the duration is over.
func (h *helperChain) bench() helperResult {
	var (
		res  helperResult
		mu   sync.Mutex
		wg   sync.WaitGroup
		hist = make([]int64, latencyBuckets)
		gets int64
	)
	ctx := context.Background()
	deadline := time.Now().Add(h.job.Duration)
	for g := range h.job.Goroutines {
		wg.Go(func() {
			zipf := rand.NewZipf(rand.New(rand.NewPCG(uint64(h.job.Index), uint64(g))), benchZipfS, 1, benchKeys-1)
			local := make([]int64, latencyBuckets)
			var n int64
			var firstErr error
			for time.Now().Before(deadline) {
				key := strconv.FormatUint(zipf.Uint64()+1, 10)
				start := time.Now()
				_, err := h.cache.Get(ctx, key)
				local[latencyBucket(time.Since(start))]++
				n++
				if err != nil && firstErr == nil {
					firstErr = err
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for i, c := range local {
				hist[i] += c
			}
			gets += n
			if firstErr != nil && len(res.Errors) < 5 {
				res.Errors = append(res.Errors, firstErr.Error())
			}
		})
	}
	if h.job.Deletes > 0 {
		// The application updating popular rows: each Delete sends every
		// process reading the key back to the source at once.
		wg.Go(func() {
			zipf := rand.NewZipf(rand.New(rand.NewPCG(uint64(h.job.Index), 1<<32)), benchZipfS, 1, benchKeys-1)
			tick := time.NewTicker(time.Second / time.Duration(h.job.Deletes))
			defer tick.Stop()
			for time.Now().Before(deadline) {
				<-tick.C
				if err := h.cache.Delete(ctx, strconv.FormatUint(zipf.Uint64()+1, 10)); err != nil {
					mu.Lock()
					res.Errors = append(res.Errors, err.Error())
					mu.Unlock()
					return
				}
				mu.Lock()
				res.Writes++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Reads, res.Latency = gets, hist
	return res
}

// BenchmarkLeasesZipf runs each variant once for benchDuration; run it
// with -benchtime 1x.
func BenchmarkLeasesZipf(b *testing.B) {
	mc := testenv.Memcached(b, testenv.WithArgs("-c", "4096"))
	db := testenv.MySQL(b)
	mustExec(b, db.DB, "CREATE TABLE articles (id INT NOT NULL PRIMARY KEY, body LONGBLOB NOT NULL)")
	insertRows(b, db.DB, 1, benchKeys, 100)
	type variant struct {
		name    string
		deletes int
		leases  bool
		beta    float64
		grace   time.Duration
	}
	var variants []variant
	for _, deletes := range []int{0, benchDeletes} {
		for _, v := range []variant{
			{name: "singleflight"},
			{name: "leases", leases: true},
			{name: "leases+xfetch", leases: true, beta: 1},
			{name: "leases+swr", leases: true, grace: time.Second},
		} {
			v.deletes = deletes
			v.name = fmt.Sprintf("deletes=%d/%s", deletes, v.name)
			variants = append(variants, v)
		}
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				if err := memcache.New(mc.Addr).FlushAll(); err != nil {
					b.Fatal(err)
				}
				jobs := make([]helperJob, benchProcs)
				for i := range jobs {
					jobs[i] = helperJob{
						Mode: "bench", Memcached: mc.Addr, DSN: db.DSN, Query: "SELECT id, body FROM articles WHERE id IN (?)",
						Goroutines: benchGoroutines, Leases: v.leases, LeaseTTL: 3 * time.Second, LeaseWait: 5 * time.Second,
						EarlyRefresh: v.beta, Grace: v.grace, TopTTL: benchTTL, Duration: benchDuration,
						LoadDelay: benchLoadDelay, Index: i, Procs: benchProcs,
					}
				}
				jobs[0].Deletes = v.deletes
				procs := startHelpers(b, jobs...)
				q0 := db.Selects(b)
				start := time.Now()
				for _, p := range procs {
					p.start(b)
				}
				hist := make([]int64, latencyBuckets)
				var gets, hits, stale, loaded, timeouts int64
				for _, p := range procs {
					res := p.result(b)
					gets += res.Reads
					hits += res.Stats.Tiers[0].Hits + res.Stats.Refresh.StaleServed
					stale += res.Stats.Refresh.StaleServed
					loaded += res.Stats.Loader.Keys
					timeouts += res.Stats.Leases.Timeouts
					for i, n := range res.Latency {
						hist[i] += n
					}
				}
				secs := time.Since(start).Seconds()
				selects := db.Selects(b) - q0
				p50, p99, p999 := latencyQuantile(hist, 0.50), latencyQuantile(hist, 0.99), latencyQuantile(hist, 0.999)
				b.ReportMetric(float64(selects)/secs, "sql/s")
				b.ReportMetric(float64(loaded)/secs, "keys-loaded/s")
				b.ReportMetric(float64(gets)/secs, "gets/s")
				b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
				b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
				b.ReportMetric(float64(p999.Microseconds()), "p99.9-µs")
				b.ReportMetric(float64(hits)/float64(gets), "hit-ratio")
				b.Logf("%s: %.0f SQL/s, %.0f keys loaded/s, %.0f Gets/s, p50 %v, p99 %v, p99.9 %v, hit ratio %.4f (%d stale), %d lease timeouts",
					v.name, float64(selects)/secs, float64(loaded)/secs, float64(gets)/secs, p50, p99, p999, float64(hits)/float64(gets), stale, timeouts)
			}
		})
	}
}

// BenchmarkGetHitLeasesInterleaved is BenchmarkGetHitInterleaved for a
// chain with leases, early refresh and stale-while-revalidate on: a
// memcached hit must cost what it costs without them.
func BenchmarkGetHitLeasesInterleaved(b *testing.B) {
	for _, v := range []struct {
		name string
		opts []tier.Option
	}{
		{"leases", []tier.Option{tier.WithLeases()}},
		{"leases+xfetch+swr", []tier.Option{tier.WithLeases(), tier.WithEarlyRefresh(1), tier.WithStaleWhileRevalidate(time.Second)}},
	} {
		b.Run(v.name, func(b *testing.B) {
			mc := testenv.Memcached(b)
			mcTier, err := memcached.New([]string{mc.Addr + ":1"})
			if err != nil {
				b.Fatal(err)
			}
			value := make([]byte, 100)
			src := tier.LoaderFunc(func(ctx context.Context, keys []string) (map[string][]byte, error) {
				return map[string][]byte{keys[0]: value}, nil
			})
			cache, err := tier.New(src, append([]tier.Option{tier.WithTier(mcTier, time.Hour)}, v.opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { cache.Close() })
			h := &hitBench{cache: cache, raw: memcache.New(mc.Addr), key: "article:000042", rawKey: "article:000043"}
			h.raw.MaxIdleConns = benchPool
			if _, err := cache.Get(context.Background(), h.key); err != nil {
				b.Fatal(err)
			}
			// The same item size on the wire: the value in a version 2
			// envelope, as a chain with leases stores it.
			item := tier.EncodeEntry(tier.Entry{Value: value, Expires: time.Now().Add(time.Hour), Loaded: time.Now(), Delta: time.Millisecond})
			if err := h.raw.Set(&memcache.Item{Key: h.rawKey, Value: item}); err != nil {
				b.Fatal(err)
			}
			chain, raw := h.interleave(b)
			if st := cache.Stats(); st.Tiers[0].Misses > 1 {
				b.Fatalf("%d memcached misses: not measuring hits", st.Tiers[0].Misses)
			}
			c50, r50 := percentile(chain, 50), percentile(raw, 50)
			b.ReportMetric(float64(c50)/float64(r50), "p50-ratio")
			b.ReportMetric(float64(percentile(chain, 99))/float64(percentile(raw, 99)), "p99-ratio")
		})
	}
}
