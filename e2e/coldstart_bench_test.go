package e2e

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// BenchmarkColdStart runs the seed scenario with a million entries, of
// which every tenth (the hot set, 100,000 keys) was used last, under live
// traffic: a goroutine Gets random hot keys through the chain about every
// 200µs, before the restart (memcached warm: the baseline) and after it.
// Each iteration restarts memcached once. Run with:
//
//	bash scripts/with-services.sh go test -run '^$' -bench ColdStart -benchtime 3x -timeout 30m ./e2e/
//
// "warmup" lets the chain refill memcached at full speed, "warmup-rate"
// at 100,000 entries/s, "no-warmup" leaves it to live traffic (its window
// is the 3s after the restart). It reports the warmup's rate, the time
// from the restart until 90% of a sample of the hot set is back in
// memcached, and the Get latency p50/p99 before the restart (idle) and
// during the warmup.
func BenchmarkColdStart(b *testing.B) {
	for _, tc := range []struct {
		name string
		auto []tier.WarmupOption // nil: no automatic warmup
	}{
		{"warmup", []tier.WarmupOption{}},
		{"warmup-rate=100000", []tier.WarmupOption{tier.WithWarmupRate(100_000)}},
		{"no-warmup", nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const n, hotEvery = 1_000_000, 10
			cs := newColdStart(b, n, hotEvery, tc.auto)
			ctx := context.Background()
			hot := make([]string, 0, n/hotEvery)
			for i := 0; i < n; i += hotEvery {
				hot = append(hot, coldStartKey(i))
			}
			var m struct{ rate, hot90, warmup, idle50, idle99, p50, p99 []float64 }
			for run := int64(1); run <= int64(b.N); run++ {
				if _, err := cs.cache.Warmup(ctx); err != nil { // memcached warm for the baseline
					b.Fatal(err)
				}
				live := startLiveGets(cs.cache, hot)
				time.Sleep(2 * time.Second)
				restart := time.Now()
				cs.mc.Restart()
				hot90 := timeUntilBack(cs, hot, 0.9)
				from, to := restart, restart.Add(3*time.Second)
				if tc.auto != nil {
					p := cs.waitWarmup(b, run)
					if p.Err != nil || p.Failed != 0 || p.Written+p.Present != int64(n) {
						b.Fatalf("warmup = %+v", p)
					}
					from, to = p.Started, p.Started.Add(p.Elapsed)
					m.rate = append(m.rate, p.Rate)
					m.warmup = append(m.warmup, ms(p.Elapsed))
				} else {
					time.Sleep(time.Until(to))
				}
				samples := live.stop()
				var idle, during []time.Duration
				for _, s := range samples {
					switch {
					case s.at.Before(restart):
						idle = append(idle, s.took)
					case !s.at.Before(from) && s.at.Before(to):
						during = append(during, s.took)
					}
				}
				back := hot90(restart)
				m.hot90 = append(m.hot90, ms(back))
				m.idle50 = append(m.idle50, us(percentile(idle, 50)))
				m.idle99 = append(m.idle99, us(percentile(idle, 99)))
				m.p50 = append(m.p50, us(percentile(during, 50)))
				m.p99 = append(m.p99, us(percentile(during, 99)))
				b.Logf("run %d: %s after the restart %v for 90%% of the hot set; Get p50/p99 idle %v/%v (%d Gets), after the restart %v/%v (%d Gets)",
					run, tc.name, back.Round(time.Millisecond), percentile(idle, 50), percentile(idle, 99), len(idle),
					percentile(during, 50), percentile(during, 99), len(during))
			}
			if tc.auto != nil {
				b.ReportMetric(median(m.rate), "warmup_keys/s")
				b.ReportMetric(median(m.warmup), "warmup_ms")
			}
			b.ReportMetric(median(m.hot90), "hot90_ms")
			b.ReportMetric(median(m.idle50), "p50_idle_µs")
			b.ReportMetric(median(m.idle99), "p99_idle_µs")
			b.ReportMetric(median(m.p50), "p50_after_µs")
			b.ReportMetric(median(m.p99), "p99_after_µs")
			b.ReportMetric(median(m.p99)/median(m.idle99), "p99_ratio")
		})
	}
}

type liveSample struct {
	at   time.Time
	took time.Duration
}

// liveGets is a goroutine that Gets random hot keys through the chain at a
// steady pace, recording how long each took.
type liveGets struct {
	quit    chan struct{}
	wg      sync.WaitGroup
	samples []liveSample
}

func startLiveGets(cache *tier.Cache, keys []string) *liveGets {
	l := &liveGets{quit: make(chan struct{})}
	l.wg.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		ctx := context.Background()
		for {
			select {
			case <-l.quit:
				return
			default:
			}
			start := time.Now()
			if _, err := cache.Get(ctx, keys[rng.IntN(len(keys))]); err != nil {
				panic(err)
			}
			l.samples = append(l.samples, liveSample{at: start, took: time.Since(start)})
			time.Sleep(200 * time.Microsecond)
		}
	})
	return l
}

func (l *liveGets) stop() []liveSample {
	close(l.quit)
	l.wg.Wait()
	return l.samples
}

// timeUntilBack polls a sample of 200 keys in memcached every 10ms, in the
// background, and returns a func that waits until at least frac of them
// are back (or a minute has passed) and tells how long after since that
// was.
func timeUntilBack(cs *coldStart, keys []string, frac float64) func(since time.Time) time.Duration {
	rng := rand.New(rand.NewPCG(3, 4))
	sample := make([]string, 200)
	for i := range sample {
		sample[i] = keys[rng.IntN(len(keys))]
	}
	var back atomic.Int64 // Unix nanoseconds
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(time.Minute)
		for ; time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			m, _ := cs.mcTier.GetMulti(context.Background(), sample)
			if float64(len(m)) >= frac*float64(len(sample)) {
				break
			}
		}
		back.Store(time.Now().UnixNano())
	}()
	return func(since time.Time) time.Duration {
		<-done
		return time.Unix(0, back.Load()).Sub(since)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
