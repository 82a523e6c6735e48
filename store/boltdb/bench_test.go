package boltdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// Run with:
//
//	go test -run '^$' -bench . -benchmem ./store/boltdb/

const benchKeys = 100_000

var benchValue = value(strings.Repeat("v", 100))

func benchKey(i int) string { return fmt.Sprintf("article:%08d", i) }

// benchStore returns a store holding benchKeys entries, all on disk.
func benchStore(b *testing.B) (*Store, []string) {
	b.Helper()
	s := openTest(b, WithNoSync(true), WithQueueSize(benchKeys))
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = benchKey(i)
		mustSet(b, s, keys[i], benchValue)
	}
	mustFlush(b, s)
	return s, keys
}

func BenchmarkGet(b *testing.B) {
	s, keys := benchStore(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 1))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(ctx, keys[rng.IntN(len(keys))]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetParallel(b *testing.B) {
	s, keys := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			if _, err := s.Get(ctx, keys[rng.IntN(len(keys))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGetMulti100(b *testing.B) {
	s, keys := benchStore(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 1))
	batch := make([]string, 100)
	b.ReportAllocs()
	for b.Loop() {
		for i := range batch {
			batch[i] = keys[rng.IntN(len(keys))]
		}
		if m, err := s.GetMulti(ctx, batch); err != nil || len(m) == 0 {
			b.Fatal(len(m), err)
		}
	}
}

// BenchmarkSet measures entries per second through the write-behind path
// into the file: Set every entry, then Flush. The queue is sized to hold
// them all so that none is dropped. With fsync each batch is one commit
// and one bbolt sync.
func BenchmarkSet(b *testing.B) {
	for _, tc := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			keys := make([]string, b.N)
			for i := range keys {
				keys[i] = benchKey(i)
			}
			s := openTest(b, WithNoSync(tc.noSync), WithQueueSize(max(b.N, 1)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for _, k := range keys {
				if err := s.Set(ctx, k, benchValue); err != nil {
					b.Fatal(err)
				}
			}
			mustFlush(b, s)
			elapsed := time.Since(start)
			b.StopTimer()
			c := s.Counters()
			if c["dropped"] != 0 || c["entries_written"] != int64(b.N) {
				b.Fatalf("dropped=%d entries_written=%d, want 0 and %d", c["dropped"], c["entries_written"], b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
			b.ReportMetric(float64(b.N)/float64(c["batches_written"]), "entries/batch")
		})
	}
}

// BenchmarkScanHot lists a file of benchKeys entries whose use log names
// every one of them, as after a fill: the cost per entry of what a warmup
// reads.
func BenchmarkScanHot(b *testing.B) {
	s, _ := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if err := s.ScanHot(ctx, func(string, tier.Entry) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != benchKeys {
			b.Fatalf("listed %d entries, want %d", n, benchKeys)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchKeys), "ns/entry")
}
