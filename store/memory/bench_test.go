package memory_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/metrics"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/store/memory"
	"github.com/tiercache/tiercache/tier"
)

// benchKeys is how many keys the hit benchmarks spread their Gets over.
const benchKeys = 1000

// hitChains builds the chains whose hits BenchmarkHit times, each with the
// same 100-byte values under the same keys: memory alone, memory on top
// of a real memcached (the chain a user builds), the same with the metrics
// decorators tiercache.Build puts around every tier, and memcached alone
// for comparison.
func hitChains(b *testing.B) (keys []string, chains []hitChain) {
	b.Helper()
	srv := testenv.Memcached(b, testenv.WithThreads(1))
	value := make([]byte, 100)
	// A Get the top tier should have answered reaches the source when
	// memcached times out on a loaded machine; it is answered, and counted.
	src := tier.LoaderFunc(func(_ context.Context, keys []string) (map[string][]byte, error) {
		loads.Add(int64(len(keys)))
		out := make(map[string][]byte, len(keys))
		for _, k := range keys {
			out[k] = value
		}
		return out, nil
	})
	newMemory := func() tier.Tier {
		m, err := memory.New(memory.WithTTL(time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	newMemcached := func(prefix string) tier.Tier {
		mc, err := memcached.New([]string{srv.Addr}, memcached.WithKeyPrefix(prefix))
		if err != nil {
			b.Fatal(err)
		}
		return mc
	}
	timings := metrics.NewTimings()
	build := func(name string, extra []tier.Option, tiers ...tier.Tier) hitChain {
		opts := append([]tier.Option(nil), extra...)
		for _, t := range tiers {
			opts = append(opts, tier.WithTier(t, time.Hour))
		}
		c, err := tier.New(src, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return hitChain{name: name, cache: c}
	}
	chains = []hitChain{
		build("memory", nil, newMemory()),
		build("memory+memcached", nil, newMemory(), newMemcached("a:")),
		build("observed", []tier.Option{tier.WithObserver(timings.Observer())}, newMemory(), newMemcached("b:")),
		build("memcached", nil, newMemcached("c:")),
	}
	ctx := context.Background()
	for i := range benchKeys {
		keys = append(keys, fmt.Sprintf("bench:hit:%08d", i))
	}
	for _, c := range chains {
		for _, k := range keys {
			if err := c.cache.Set(ctx, k, value); err != nil {
				b.Fatal(err)
			}
		}
	}
	return keys, chains
}

// loads counts the keys the hit benchmarks' source was asked for.
var loads atomic.Int64

type hitChain struct {
	name  string
	cache *tier.Cache
}

// BenchmarkHit times cache.Get of a key the top tier holds, the call an
// application makes. ns/op is the mean; p50-ns is the median over batches
// of 64 Gets (a clock read per Get would cost as much as the Get), and
// allocs/op counts every allocation on the path, the returned value's
// included.
//
//	go test -run '^$' -bench 'Hit$' -benchmem -count 5 ./store/memory
func BenchmarkHit(b *testing.B) {
	keys, chains := hitChains(b)
	ctx := context.Background()
	for _, c := range chains {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			const batch = 64
			batches := make([]time.Duration, 0, 1<<16)
			i := 0
			loads.Store(0)
			start := time.Now()
			for b.Loop() {
				if _, err := c.cache.Get(ctx, keys[i%benchKeys]); err != nil {
					b.Fatal(err)
				}
				i++
				if i%batch == 0 && len(batches) < cap(batches) {
					now := time.Now()
					batches = append(batches, now.Sub(start)/batch)
					start = now
				}
			}
			b.ReportMetric(float64(loads.Swap(0))/float64(b.N), "loads/op")
			if len(batches) > 0 {
				slices.Sort(batches)
				b.ReportMetric(float64(batches[len(batches)/2].Nanoseconds()), "p50-ns")
			}
		})
	}
}

// BenchmarkHitParallel is BenchmarkHit from 32 goroutines at once.
//
//	go test -run '^$' -bench HitParallel -benchmem -count 5 ./store/memory
func BenchmarkHitParallel(b *testing.B) {
	keys, chains := hitChains(b)
	ctx := context.Background()
	for _, c := range chains {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(16) // 32 goroutines on 2 cores
			loads.Store(0)
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := c.cache.Get(ctx, keys[i%benchKeys]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
			b.ReportMetric(float64(loads.Swap(0))/float64(b.N), "loads/op")
		})
	}
}
