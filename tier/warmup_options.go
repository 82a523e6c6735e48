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
// burst in the servers the rate is there to spare.
type pacer struct {
	rate  float64
	step  int64
	start time.Time
	sent  int64
}

// pacerSlack is how far behind its rate a pacer may fall and still catch
// up.
const pacerSlack = 5 * time.Millisecond

func newPacer(rate float64) *pacer {
	return &pacer{rate: rate, step: max(1, int64(rate/500)), start: time.Now()}
}

// wait counts one entry and, when the entries so far are ahead of the
// rate, sleeps until they are not. It returns ctx's error if ctx ends
// first.
func (p *pacer) wait(ctx context.Context) error {
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
