package tier

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// WarmupOption configures one warmup: a call to Warmup, or every automatic
// warmup when given to WithAutoWarmup.
type WarmupOption func(*warmupConfig) error

type warmupConfig struct {
	rate     float64 // entries sent per second; 0 is no limit
	burst    int64   // entries sent before the rate applies
	progress func(WarmupProgress)
	every    time.Duration
}

func newWarmupConfig(opts []WarmupOption) (warmupConfig, error) {
	var cfg warmupConfig
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return warmupConfig{}, err
		}
	}
	return cfg, nil
}

// WithWarmupRate limits a warmup to perSecond entries sent per second, to
// leave the servers room for live traffic. 0, the default, sends as fast
// as the tier above takes them.
func WithWarmupRate(perSecond int) WarmupOption {
	return func(c *warmupConfig) error {
		if perSecond < 0 {
			return fmt.Errorf("tier: WithWarmupRate: %d, want 0 (no limit) or more", perSecond)
		}
		c.rate = float64(perSecond)
		return nil
	}
}

// WithWarmupBurst lets the first n entries of a rate-limited warmup go
// at full speed, and applies the rate (WithWarmupRate) to the rest.
//
// A durable tier that keeps recency (a HotScanner, such as store/boltdb)
// lists the entries used most recently first, so n about the size of the
// working set brings what live traffic reads back in a fraction of a
// second, while every Get of a key not yet back costs a miss and a read of
// the durable tier; the long tail, which live traffic seldom asks for,
// then trickles in at a rate that leaves the servers' CPUs to live
// traffic. docs/benchmarks.md#cold-start measures the trade. Without a
// rate, the burst changes nothing.
func WithWarmupBurst(n int) WarmupOption {
	return func(c *warmupConfig) error {
		if n < 0 {
			return fmt.Errorf("tier: WithWarmupBurst: %d, want 0 (none) or more", n)
		}
		c.burst = int64(n)
		return nil
	}
}

// WithWarmupProgress calls fn with the warmup's progress every interval
// while it runs, and once more when it ends (Done set). fn runs on a
// goroutine of the warmup's own, never with a lock held; a panic in it is
// recovered and counted in Stats().Warmup.Panics. Stats().Warmup.Last
// offers the same numbers to whoever polls instead.
func WithWarmupProgress(interval time.Duration, fn func(WarmupProgress)) WarmupOption {
	return func(c *warmupConfig) error {
		if interval <= 0 {
			return fmt.Errorf("tier: WithWarmupProgress: interval %v, want a positive duration", interval)
		}
		if fn == nil {
			return errors.New("tier: WithWarmupProgress: nil func")
		}
		c.progress, c.every = fn, interval
		return nil
	}
}

// pacer spaces sends out to a rate. It sleeps in steps of a couple of
// milliseconds rather than once per entry, so that a high rate costs no
// timer per entry. A sender that fell behind (a slow scan, a full window,
// a GC pause) catches up by at most pacerSlack's worth of entries: what it
// missed is forgotten rather than sent at full speed, which would queue a
// burst in the servers the rate is there to spare. The first burst
// entries pass without waiting (WithWarmupBurst); the rate's clock starts
// after them.
type pacer struct {
	rate  float64
	step  int64
	burst int64
	start time.Time
	sent  int64
}

// pacerSlack is how far behind its rate a pacer may fall and still catch
// up.
const pacerSlack = 5 * time.Millisecond

func newPacer(rate float64, burst int64) *pacer {
	return &pacer{rate: rate, step: max(1, int64(rate/500)), burst: burst, start: time.Now()}
}

// wait counts one entry and, when the entries so far are ahead of the
// rate, sleeps until they are not. It returns ctx's error if ctx ends
// first.
func (p *pacer) wait(ctx context.Context) error {
	if p.burst > 0 {
		if p.burst--; p.burst == 0 {
			p.start = time.Now()
		}
		return nil
	}
	p.sent++
	if p.rate <= 0 || p.sent%p.step != 0 {
		return nil
	}
	due := p.start.Add(time.Duration(float64(p.sent) / p.rate * float64(time.Second)))
	d := time.Until(due)
	if d <= 0 {
		if d < -pacerSlack {
			p.start = p.start.Add(-d - pacerSlack)
		}
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
