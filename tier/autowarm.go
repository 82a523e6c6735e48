package tier

import (
	"errors"
	"fmt"
	"strings"
)

// WithAutoWarmup makes the chain refill the top tier by itself whenever the
// top tier reports that one of its servers restarted or was flushed
// (RestartWatcher; for memcached, WithRestartDetection): a warmup, with
// opts, of exactly that server's keys from the durable tier, most recently
// used first when the durable tier can tell (HotScanner). Restarts that
// arrive while a warmup runs are gathered into the next one.
//
// The warmups run on a goroutine the Cache owns: Close cancels and waits
// for it, a panic in it is recovered and counted, and Stats().Warmup shows
// its progress. New fails when the top tier does not report restarts or no
// tier below it can be scanned.
func WithAutoWarmup(opts ...WarmupOption) Option {
	return func(c *config) error {
		wc, err := newWarmupConfig(opts)
		if err != nil {
			return fmt.Errorf("tier: WithAutoWarmup: %w", err)
		}
		c.autoWarmup = &wc
		return nil
	}
}

// restartEvents returns the channel the top tier reports restarts on, for
// WithAutoWarmup, or why there is none.
func (c *Cache) restartEvents() (<-chan Restart, error) {
	if len(c.tiers) < 2 {
		return nil, errors.New("tier: WithAutoWarmup: needs a top tier and a durable tier below it")
	}
	w, ok := c.tiers[0].tier.(RestartWatcher)
	if !ok {
		return nil, fmt.Errorf("tier: WithAutoWarmup: top tier %s does not report restarts", c.tiers[0].name)
	}
	events := w.Restarts()
	if events == nil {
		return nil, fmt.Errorf("tier: WithAutoWarmup: top tier %s does not watch for restarts (for memcached: WithRestartDetection)", c.tiers[0].name)
	}
	if src, _ := c.durableTier(); src == 0 {
		return nil, fmt.Errorf("tier: WithAutoWarmup: %w", ErrNoDurableTier)
	}
	return events, nil
}

// watchRestarts runs a warmup for every batch of restarts that arrives,
// until Close or until the tier closes its channel.
func (c *Cache) watchRestarts(events <-chan Restart, cfg warmupConfig) {
	defer c.bg.Done()
	for {
		var first Restart
		select {
		case <-c.bgCtx.Done():
			return
		case r, ok := <-events:
			if !ok {
				return
			}
			first = r
		}
		restarts := []Restart{first}
	gather:
		for {
			select {
			case r, ok := <-events:
				if !ok {
					break gather
				}
				restarts = append(restarts, r)
			default:
				break gather
			}
		}
		c.ctr.warmRestarts.Add(int64(len(restarts)))
		c.autoWarmup(restarts, cfg)
	}
}

// autoWarmup refills the top tier with the keys of the servers that
// restarted. A panic is recovered and counted: the watcher must outlive
// one bad warmup.
func (c *Cache) autoWarmup(restarts []Restart, cfg warmupConfig) {
	defer func() {
		if recover() != nil {
			c.ctr.warmPanics.Add(1)
		}
	}()
	// The error is in the run's progress (Stats().Warmup.Last.Err).
	_, _ = c.warm(c.bgCtx, warmPlan{trigger: describeRestarts(restarts), above: 1, owns: ownsAny(restarts), cfg: cfg, auto: true})
}

// ownsAny selects the keys of any of the restarted servers; nil when one of
// them holds every key.
func ownsAny(restarts []Restart) func(string) bool {
	owns := make([]func(string) bool, 0, len(restarts))
	for _, r := range restarts {
		if r.Owns == nil {
			return nil
		}
		owns = append(owns, r.Owns)
	}
	if len(owns) == 1 {
		return owns[0]
	}
	return func(key string) bool {
		for _, o := range owns {
			if o(key) {
				return true
			}
		}
		return false
	}
}

func describeRestarts(restarts []Restart) string {
	parts := make([]string, len(restarts))
	for i, r := range restarts {
		parts[i] = r.Node + " " + r.Reason
	}
	return strings.Join(parts, ", ")
}
