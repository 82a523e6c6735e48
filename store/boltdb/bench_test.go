package boltdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
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

// BenchmarkAddBackPressure is the durable tier's side of a backfill from
// SQL: 8 goroutines Add distinct keys, with fsync on and the default queue
// of 10,000 keys, far fewer than the keys, so that the adders wait for the
// writer whenever it falls behind. Every key must be in the file after
// Flush, counted by reading it back, not by a counter.
func BenchmarkAddBackPressure(b *testing.B) {
	const workers = 8
	ctx := context.Background()
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	s := openTest(b)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(keys); i += workers {
				if err := s.Add(ctx, keys[i], benchValue); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	mustFlush(b, s)
	elapsed := time.Since(start)
	b.StopTimer()
	missing := 0
	for lo := 0; lo < len(keys); lo += 1000 {
		m, err := s.GetMulti(ctx, keys[lo:min(lo+1000, len(keys))])
		if err != nil {
			b.Fatal(err)
		}
		missing += min(lo+1000, len(keys)) - lo - len(m)
	}
	if missing > 0 {
		b.Fatalf("%d of %d added keys missing from the file", missing, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "keys/s")
	b.ReportMetric(float64(missing), "dropped")
	b.ReportMetric(float64(b.N)/float64(s.Counters()["batches_written"]), "keys/batch")
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
