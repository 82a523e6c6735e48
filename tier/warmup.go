package tier

import (
	"context"
	"errors"
	"fmt"

	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// ErrNoDurableTier is returned by Warmup when no tier below the top can be
// scanned.
var ErrNoDurableTier = errors.New("tier: no scannable tier below the top")

// warmupWorkers bounds the writes a warmup has in flight.
const warmupWorkers = 16

// Warmup copies the live entries of the first scannable tier below the top
// (the durable tier) into every tier above it, so that after a memcached
// restart the working set comes back from local disk instead of from the
// database. Entries are added, never overwriting what live traffic wrote
// since, with the time they have left (capped by each tier's TTL). Expired
// and negative entries are skipped, and so is any key invalidated after the
// warmup began. It is safe to run again: a second run finds every key
// present and writes nothing.
func (c *Cache) Warmup(ctx context.Context) (WarmupStats, error) {
	src, scanner := c.durableTier()
	if scanner == nil {
		return WarmupStats{}, ErrNoDurableTier
	}
	c.bgMu.Lock()
	if c.bgClosed {
		c.bgMu.Unlock()
		return WarmupStats{}, ErrClosed
	}
	c.bg.Add(1)
	c.bgMu.Unlock()
	defer c.bg.Done()

	c.ctr.warmRuns.Add(1)
	c.ctr.warmRunning.Store(true)
	defer c.ctr.warmRunning.Store(false)

	var scanned, written, skipped, present, failed counterPair
	scanned.global, written.global = &c.ctr.warmScanned, &c.ctr.warmWritten
	skipped.global, present.global, failed.global = &c.ctr.warmSkipped, &c.ctr.warmPresent, &c.ctr.warmFailed

	gens := c.gens.snapshot()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(warmupWorkers)
	err := scanner.Scan(gctx, func(key string, e Entry) error {
		if err := gctx.Err(); err != nil {
			return err
		}
		scanned.add(1)
		now := c.clock.Now()
		if e.Negative || e.Expired(now) {
			skipped.add(1)
			return nil
		}
		gen := gens[c.gens.index(key)]
		if c.gens.current(key) != gen {
			skipped.add(1)
			return nil
		}
		// Scan may reuse its buffers once fn returns.
		e.Value = append([]byte(nil), e.Value...)
		g.Go(func() error {
			o := c.backfillOne(context.WithoutCancel(gctx), found{key: key, entry: e}, src, gen, now)
			switch {
			case o.written > 0:
				written.add(1)
			case o.failed:
				failed.add(1)
			case o.present:
				present.add(1)
			default:
				skipped.add(1)
			}
			return nil
		})
		return nil
	})
	if werr := g.Wait(); err == nil {
		err = werr
	}
	run := WarmupStats{
		Runs:    1,
		Scanned: scanned.local.Load(),
		Written: written.local.Load(),
		Skipped: skipped.local.Load(),
		Present: present.local.Load(),
		Failed:  failed.local.Load(),
	}
	if err != nil {
		return run, fmt.Errorf("tier: warmup from %s: %w", c.tiers[src].name, err)
	}
	return run, nil
}

// durableTier is the first tier below the top that can be scanned.
func (c *Cache) durableTier() (int, Scanner) {
	for i := 1; i < len(c.tiers); i++ {
		if s, ok := c.tiers[i].tier.(Scanner); ok {
			return i, s
		}
	}
	return 0, nil
}

// counterPair counts for one warmup run and for the cache's lifetime stats.
type counterPair struct {
	local  atomic.Int64
	global *atomic.Int64
}

func (p *counterPair) add(n int64) {
	p.local.Add(n)
	p.global.Add(n)
}
