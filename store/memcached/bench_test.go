package memcached

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
)

// benchSetup starts a memcached with one worker thread (see
// BENCHMARKING.md: with more, latency depends on which thread a connection
// lands on), and returns a Tier and a raw gomemcache client on it with the
// same pool size, and the key both read: a 100-byte value stored through
// the Tier, so both sides fetch the same bytes.
func benchSetup(b *testing.B) (*Tier, *memcache.Client, string) {
	b.Helper()
	mc := testenv.Memcached(b)
	tr, err := New([]string{mc.Addr})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close() })
	raw := memcache.New(mc.Addr)
	raw.Timeout = DefaultTimeout
	raw.MaxIdleConns = rawIdleConns
	b.Cleanup(func() { raw.Close() })

	const key = "bench:key:0000000042"
	e := tier.Entry{Value: make([]byte, 100), Expires: time.Now().Add(time.Hour)}
	if err := tr.Set(context.Background(), key, e); err != nil {
		b.Fatal(err)
	}
	return tr, raw, key
}

// BenchmarkGet compares a Tier.Get hit with a raw gomemcache Get of the
// same item. Run with -count 10 and compare the two with benchstat, or
// read BenchmarkGetInterleaved, which alternates them in one loop.
func BenchmarkGet(b *testing.B) {
	tr, raw, key := benchSetup(b)
	ctx := context.Background()
	b.Run("tier", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tr.Get(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := raw.Get(key); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGetInterleaved alternates raw and Tier Gets (raw, tier, raw,
// tier...) so that drift in the machine's load hits both alike, and
// reports the median latency of each and their ratio.
func BenchmarkGetInterleaved(b *testing.B) {
	tr, raw, key := benchSetup(b)
	ctx := context.Background()
	var rawNs, tierNs []float64
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := raw.Get(key); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if _, err := tr.Get(ctx, key); err != nil {
			b.Fatal(err)
		}
		rawNs = append(rawNs, float64(mid.Sub(start)))
		tierNs = append(tierNs, float64(time.Since(mid)))
	}
	r, t := median(rawNs), median(tierNs)
	b.ReportMetric(r, "raw-p50-ns")
	b.ReportMetric(t, "tier-p50-ns")
	b.ReportMetric(t/r, "tier/raw")
}

// rawIdleConns is the raw gomemcache client's idle pool in the
// benchmarks: enough that it never dials under their concurrency, as a
// user tuning gomemcache would set it. gomemcache cannot pipeline, so it
// needs a connection per concurrent caller where the Tier needs two.
const rawIdleConns = 64

// BenchmarkGetMultiWarm compares a Tier.GetMulti of 100,000 warm keys
// with raw gomemcache fetching the same keys in multi-gets of 100, one
// after the other, alternating the two in each round (raw, tier, raw,
// tier...), and reports the median time of each and their ratio. One op
// is one round of both. Run with:
//
//	go test -run '^$' -bench GetMultiWarm -benchtime 20x ./store/memcached/
func BenchmarkGetMultiWarm(b *testing.B) {
	const keys, chunk = 100_000, 100
	tr, raw, _ := benchSetup(b)
	ctx := context.Background()
	all := make([]string, keys)
	for i := range all {
		all[i] = fmt.Sprintf("bench:warm:%08d", i)
	}
	e := tier.Entry{Value: make([]byte, 100), Expires: time.Now().Add(time.Hour)}
	var failed atomic.Int64
	err := tr.AddBulk(ctx, func(yield func(string, tier.Entry) bool) {
		for _, k := range all {
			if !yield(k, e) {
				return
			}
		}
	}, func(_ string, err error) {
		if err != nil {
			failed.Add(1)
		}
	})
	if err != nil || failed.Load() != 0 {
		b.Fatalf("warming: %v, %d adds failed", err, failed.Load())
	}
	wires := make([]string, keys)
	for i, k := range all {
		wires[i], _ = tr.keys.encode(k)
	}
	var rawNs, tierNs []float64
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		found := 0
		for i := 0; i < keys; i += chunk {
			m, err := raw.GetMulti(wires[i:min(i+chunk, keys)])
			if err != nil {
				b.Fatal(err)
			}
			found += len(m)
		}
		mid := time.Now()
		m, err := tr.GetMulti(ctx, all)
		if err != nil || len(m) != keys || found != keys {
			b.Fatalf("tier found %d, raw %d, of %d: %v", len(m), found, keys, err)
		}
		rawNs = append(rawNs, float64(mid.Sub(start)))
		tierNs = append(tierNs, float64(time.Since(mid)))
	}
	if c := tr.Counters(); c["timeouts"] != 0 || c["errors"] != 0 {
		b.Fatalf("timeouts %d, errors %d", c["timeouts"], c["errors"])
	}
	r, t := median(rawNs), median(tierNs)
	b.ReportMetric(r/1e6, "raw-p50-ms")
	b.ReportMetric(t/1e6, "tier-p50-ms")
	b.ReportMetric(t/r, "tier/raw")
}

func median(xs []float64) float64 {
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

// BenchmarkGetParallel runs Gets from 16 goroutines per GOMAXPROCS (32 on
// a 2-core machine), where the idle pool size matters: with gomemcache's
// default of 2 idle connections most Gets would dial.
func BenchmarkGetParallel(b *testing.B) {
	tr, raw, key := benchSetup(b)
	ctx := context.Background()
	b.Run("tier", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := tr.Get(ctx, key); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := raw.Get(key); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkKeyEncode(b *testing.B) {
	c := keyCodec{prefix: "app:"}
	for _, bc := range []struct{ name, key string }{
		{"legal", "user:profile:1234567"},
		{"hashed", "user profile 1234567"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.encode(bc.key)
			}
		})
	}
}
