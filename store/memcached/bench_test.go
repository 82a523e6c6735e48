package memcached

import (
	"context"
	"sort"
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
	raw.MaxIdleConns = DefaultServerConnections
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
