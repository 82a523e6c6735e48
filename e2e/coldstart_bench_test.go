package e2e

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
)

// BenchmarkColdStart runs the seed scenario with a million entries, of
// which every tenth (the hot set, 100,000 keys) was used last, under live
// traffic: a goroutine Gets random hot keys through the chain about once a
// millisecond, before the restart (memcached warm: the baseline) and after
// it. Each iteration restarts memcached once. Run with:
//
//	bash scripts/with-services.sh go test -run '^$' -bench ColdStart -benchtime 3x -timeout 60m ./e2e/
//
// "warmup" lets the chain refill memcached at full speed, "rate=100000"
// at 100,000 entries/s, "rate=25000,burst=100000" sends the first 100,000
// (the hot set, listed first) at full speed and the rest at 25,000/s,
// "rate=10000,burst=100000" and "rate=5000,burst=100000" likewise at
// 10,000/s and 5,000/s, and "no-warmup" leaves
// it to live traffic (its window is the 3s after the restart). It reports
// the warmup's rate, the time from the restart until 90% of a sample of
// the hot set is back in memcached, and the Get latency p50/p99 before the
// restart (idle) and during the warmup; with a burst, also the p99 of the
// paced part alone.
//
// A second goroutine Gets a key from another memcached, which the warmup
// never touches, on the same schedule ("other"): its p99 moving with the
// warmup's is the host's CPUs, not the chain or the warmed server.
func BenchmarkColdStart(b *testing.B) {
	for _, tc := range []struct {
		name        string
		warmup      bool
		rate, burst int
	}{
		{name: "warmup", warmup: true},
		{name: "rate=100000", warmup: true, rate: 100_000},
		{name: "rate=25000,burst=100000", warmup: true, rate: 25_000, burst: 100_000},
		{name: "rate=10000,burst=100000", warmup: true, rate: 10_000, burst: 100_000},
		{name: "rate=5000,burst=100000", warmup: true, rate: 5_000, burst: 100_000},
		{name: "no-warmup"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const n, hotEvery = 1_000_000, 10
			var burstDone atomic.Int64 // Unix nanoseconds when the burst was sent
			var auto []tier.WarmupOption
			if tc.warmup {
				auto = []tier.WarmupOption{tier.WithWarmupRate(tc.rate), tier.WithWarmupBurst(tc.burst),
					tier.WithWarmupProgress(5*time.Millisecond, func(p tier.WarmupProgress) {
						if tc.burst > 0 && p.Sent >= int64(tc.burst) && burstDone.Load() == 0 {
							burstDone.Store(time.Now().UnixNano())
						}
					})}
			}
			cs := newColdStart(b, n, hotEvery, auto)
			other := newOtherGets(b)
			ctx := context.Background()
			hot := make([]string, 0, n/hotEvery)
			for i := 0; i < n; i += hotEvery {
				hot = append(hot, coldStartKey(i))
			}
			var m struct{ rate, hot90, warmup, idle50, idle99, p50, p99, paced99, otherIdle99, other99 []float64 }
			for run := int64(1); run <= int64(b.N); run++ {
				if _, err := cs.cache.Warmup(ctx); err != nil { // memcached warm for the baseline
					b.Fatal(err)
				}
				burstDone.Store(0)
				live, probe := startLiveGets(cs.cache, hot), other.start()
				time.Sleep(2 * time.Second)
				restart := time.Now()
				cs.mc.Restart()
				hot90 := timeUntilBack(cs, hot, 0.9)
				from, to := restart, restart.Add(3*time.Second)
				if tc.warmup {
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
				samples, probes := live.stop(), probe.stop()
				paced := from
				if at := burstDone.Load(); at != 0 {
					paced = time.Unix(0, at)
				}
				idle, during := split(samples, restart, from, to)
				_, pacedPart := split(samples, restart, paced, to)
				otherIdle, otherDuring := split(probes, restart, from, to)
				back := hot90(restart)
				m.hot90 = append(m.hot90, ms(back))
				m.idle50 = append(m.idle50, us(percentile(idle, 50)))
				m.idle99 = append(m.idle99, us(percentile(idle, 99)))
				m.p50 = append(m.p50, us(percentile(during, 50)))
				m.p99 = append(m.p99, us(percentile(during, 99)))
				m.paced99 = append(m.paced99, us(percentile(pacedPart, 99)))
				m.otherIdle99 = append(m.otherIdle99, us(percentile(otherIdle, 99)))
				m.other99 = append(m.other99, us(percentile(otherDuring, 99)))
				b.Logf("run %d: %s: %v after the restart for 90%% of the hot set; Get p50/p99 idle %v/%v (%d Gets), during %v/%v (%d Gets), paced part p99 %v (%d Gets); other memcached p99 idle %v, during %v",
					run, tc.name, back.Round(time.Millisecond), percentile(idle, 50), percentile(idle, 99), len(idle),
					percentile(during, 50), percentile(during, 99), len(during), percentile(pacedPart, 99), len(pacedPart),
					percentile(otherIdle, 99), percentile(otherDuring, 99))
			}
			if tc.warmup {
				b.ReportMetric(median(m.rate), "warmup_keys/s")
				b.ReportMetric(median(m.warmup), "warmup_ms")
			}
			b.ReportMetric(median(m.hot90), "hot90_ms")
			b.ReportMetric(median(m.idle50), "p50_idle_µs")
			b.ReportMetric(median(m.idle99), "p99_idle_µs")
			b.ReportMetric(median(m.p50), "p50_after_µs")
			b.ReportMetric(median(m.p99), "p99_after_µs")
			b.ReportMetric(median(m.p99)/median(m.idle99), "p99_ratio")
			if tc.burst > 0 {
				b.ReportMetric(median(m.paced99)/median(m.idle99), "p99_paced_ratio")
			}
			b.ReportMetric(median(m.other99)/median(m.otherIdle99), "p99_other_ratio")
		})
	}
}

// split sorts samples' latencies into those before the restart and those
// in [from, to).
func split(samples []liveSample, restart, from, to time.Time) (before, in []time.Duration) {
	for _, s := range samples {
		switch {
		case s.at.Before(restart):
			before = append(before, s.took)
		case !s.at.Before(from) && s.at.Before(to):
			in = append(in, s.took)
		}
	}
	return before, in
}

// otherGets Gets one key from a memcached of its own, which no warmup
// touches, on the live Gets' schedule: a measure of the host.
type otherGets struct {
	client *memcache.Client
}

func newOtherGets(tb testing.TB) *otherGets {
	srv := testenv.Memcached(tb)
	client := memcache.New(srv.Addr)
	if err := client.Set(&memcache.Item{Key: "probe", Value: []byte("v")}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close() })
	return &otherGets{client: client}
}

func (o *otherGets) start() *liveGets {
	return startLoop(func() error {
		_, err := o.client.Get("probe")
		return err
	})
}

type liveSample struct {
	at   time.Time
	took time.Duration
}

// liveGets is a goroutine that Gets at a steady pace, recording how long
// each Get took.
type liveGets struct {
	quit    chan struct{}
	wg      sync.WaitGroup
	samples []liveSample
}

func startLiveGets(cache *tier.Cache, keys []string) *liveGets {
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	return startLoop(func() error {
		_, err := cache.Get(ctx, keys[rng.IntN(len(keys))])
		return err
	})
}

// startLoop calls get, pausing 200µs between calls (about a millisecond
// with the timer's granularity), and records how long each call took.
func startLoop(get func() error) *liveGets {
	l := &liveGets{quit: make(chan struct{})}
	l.wg.Go(func() {
		for {
			select {
			case <-l.quit:
				return
			default:
			}
			start := time.Now()
			if err := get(); err != nil {
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
