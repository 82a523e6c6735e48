package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// ErrNoDurableTier is returned by Warmup when no tier below the top can be
// scanned.
var ErrNoDurableTier = errors.New("tier: no scannable tier below the top")

// warmupWorkers bounds the writes a warmup has in flight when the tiers it
// fills take one entry at a time.
const warmupWorkers = 16

// clockEvery is how many entries a warmup handles between readings of the
// clock: a reading per entry would cost more than the rest of the work,
// and a few dozen entries take well under a millisecond.
const clockEvery = 64

// errStopScan ends a scan whose consumer wants no more entries.
var errStopScan = errors.New("tier: warmup: scan stopped")

// Warmup copies the live entries of the first scannable tier below the top
// (the durable tier) into every tier above it, so that after a memcached
// restart the working set comes back from local disk instead of from the
// database. Entries are added, never overwriting what live traffic wrote
// since, with the time they have left (capped by each tier's TTL). Expired
// and negative entries are skipped, and so is any key invalidated after the
// warmup began. It is safe to run again: a second run finds every key
// present and writes nothing.
//
// The durable tier is read most recently used first when it can tell
// (HotScanner). When the durable tier is right below the top and the top
// can add in bulk (BulkAdder, memcached's pipelined meta protocol), entries
// go up in a stream instead of one add at a time. WithWarmupRate and
// WithWarmupProgress pace and report it; Stats().Warmup shows it too.
// Close cancels a warmup in progress and waits for it to stop.
func (c *Cache) Warmup(ctx context.Context, opts ...WarmupOption) (WarmupStats, error) {
	cfg, err := newWarmupConfig(opts)
	if err != nil {
		return WarmupStats{}, err
	}
	src, _ := c.durableTier()
	if src == 0 {
		return WarmupStats{}, ErrNoDurableTier
	}
	if !c.enterBackground() {
		return WarmupStats{}, ErrClosed
	}
	defer c.bg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.bgCtx, cancel)()
	return c.warm(ctx, warmPlan{trigger: "Warmup", above: src, cfg: cfg})
}

// warmPlan is what one warmup copies, and where.
type warmPlan struct {
	trigger string
	// above is how many tiers, from the top, to fill.
	above int
	// owns selects the keys to copy; nil copies every key.
	owns func(key string) bool
	cfg  warmupConfig
	// auto is set for the warmups WithAutoWarmup starts.
	auto bool
}

// scanFunc is a durable tier's Scan or ScanHot.
type scanFunc func(ctx context.Context, fn func(key string, e Entry) error) error

// warm runs one warmup as planned and returns its counters.
func (c *Cache) warm(ctx context.Context, p warmPlan) (WarmupStats, error) {
	src, scan := c.durableTier()
	var total int64
	if sz, ok := c.tiers[src].tier.(Sized); ok {
		total = sz.Len()
	}
	run := c.newRun(p.trigger, total)
	c.lastRun.Store(run) // before the counts: who sees them sees this run
	c.ctr.warmRuns.Add(1)
	if p.auto {
		c.ctr.warmAutoRuns.Add(1)
	}
	c.ctr.warmRunning.Add(1)
	defer c.ctr.warmRunning.Add(-1)
	stopReport := c.report(run, p.cfg)
	defer func() {
		if r := recover(); r != nil {
			// A tier or an Owns func panicked: end the run, then let the
			// panic go on (automatic warmups recover and count it).
			stopReport()
			run.finish(fmt.Errorf("tier: warmup panicked: %v", r))
			panic(r)
		}
	}()

	gens := c.gens.watch()
	defer gens.stop()
	var err error
	if ba, ok := c.tiers[0].tier.(BulkAdder); ok && p.above == 1 {
		err = c.warmBulk(ctx, p, run, scan, ba, gens)
	} else {
		err = c.warmEach(ctx, p, run, scan, gens)
	}
	if err != nil {
		err = fmt.Errorf("tier: warmup from %s: %w", c.tiers[src].name, err)
	}
	stopReport()
	run.finish(err)
	c.callProgress(run, p.cfg)
	return run.stats(), err
}

// candidates scans the durable tier and yields what a warmup should send:
// the live, positive entries of the keys p.owns, not invalidated since gens
// began, at p's rate. It counts what it reads in run, and leaves the
// scan's error in *errp. The yielded value may be reused once yield
// returns. When gen is not nil, it holds during each yield the key's
// generation as read before the key was checked against gens: an
// invalidation after the check moves it, so a backfill checked against it
// can never write a value older than a Delete that returned.
func (c *Cache) candidates(ctx context.Context, p warmPlan, run *warmRun, scan scanFunc, gens *invalidationWatch, gen *uint64, errp *error) iter.Seq2[string, Entry] {
	return func(yield func(string, Entry) bool) {
		pace := newPacer(p.cfg.rate, p.cfg.burst)
		now, scanned := c.clock.Now(), 0
		err := scan(ctx, func(key string, e Entry) error {
			run.scanned.add(1)
			if scanned++; scanned%clockEvery == 0 {
				now = c.clock.Now()
			}
			if p.owns != nil && !p.owns(key) {
				return nil
			}
			if gen != nil {
				*gen = c.gens.current(key)
			}
			if e.Negative || e.Expired(now) || gens.invalidated(key) {
				run.skipped.add(1)
				return nil
			}
			if err := pace.wait(ctx); err != nil {
				return err
			}
			run.sent.add(1)
			if !yield(key, e) {
				return errStopScan
			}
			return nil
		})
		if errors.Is(err, errStopScan) {
			err = nil
		}
		*errp = err
	}
}

// warmBulk streams the candidates into the top tier with one AddBulk.
func (c *Cache) warmBulk(ctx context.Context, p warmPlan, run *warmRun, scan scanFunc, ba BulkAdder, gens *invalidationWatch) error {
	top := c.tiers[0]
	undoCtx := context.WithoutCancel(ctx)
	var scanErr error
	entries := func(yield func(string, Entry) bool) {
		now, n := c.clock.Now(), 0
		for key, e := range c.candidates(ctx, p, run, scan, gens, nil, &scanErr) {
			if n++; n%clockEvery == 0 {
				now = c.clock.Now()
			}
			e.Expires = capExpiry(e.Expires, now, top.ttl)
			if !yield(key, e) {
				return
			}
		}
	}
	// Undoes run on goroutines of their own: done is called from the
	// tier's reading side, and a round trip made there could wait for a
	// reply that side has yet to read.
	var undos sync.WaitGroup
	undoSlots := make(chan struct{}, warmupWorkers)
	undo := func(key string) {
		undos.Add(1)
		go func() {
			defer undos.Done()
			undoSlots <- struct{}{}
			defer func() { <-undoSlots }()
			if derr := top.delete(undoCtx, key); derr != nil {
				top.ctr.errors.Add(1)
			}
		}()
	}
	defer undos.Wait()
	err := top.addBulk(ctx, ba, entries, func(key string, err error) {
		switch {
		case errors.Is(err, ErrNotStored):
			run.present.add(1)
			return
		case errors.Is(err, ErrTooLarge):
			run.skipped.add(1)
			return
		}
		// As in backfillOne: an invalidation that ran while the entry was
		// on its way wins. A failed write may have landed all the same.
		// With leases the invalidation wrote a marker over the key, which
		// this add either lost to or was overwritten by: deleting now would
		// remove the marker, so memcached is left alone.
		if gens.invalidated(key) {
			if c.leaser == nil {
				undo(strings.Clone(key))
			}
			if err == nil {
				run.skipped.add(1)
				return
			}
		}
		if err != nil {
			run.failed.add(1)
			top.ctr.errors.Add(1)
			return
		}
		run.written.add(1)
		top.ctr.backfills.Add(1)
	})
	if err == nil {
		err = scanErr
	}
	return err
}

// warmEach writes the candidates into the tiers above one entry at a time,
// warmupWorkers at once, through backfillOne.
func (c *Cache) warmEach(ctx context.Context, p warmPlan, run *warmRun, scan scanFunc, gens *invalidationWatch) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(warmupWorkers)
	var scanErr error
	var gen uint64
	for key, e := range c.candidates(gctx, p, run, scan, gens, &gen, &scanErr) {
		e.Value = bytes.Clone(e.Value) // the scan may reuse its buffers
		gen := gen
		g.Go(func() error {
			o := c.backfillOne(context.WithoutCancel(gctx), found{key: key, entry: e}, p.above, gen, c.clock.Now())
			switch {
			case o.written > 0:
				run.written.add(1)
			case o.failed:
				run.failed.add(1)
			case o.present:
				run.present.add(1)
			default:
				run.skipped.add(1)
			}
			return nil
		})
	}
	err := g.Wait()
	if err == nil {
		err = scanErr
	}
	return err
}

// durableTier is the first tier below the top that can be scanned, and how
// to scan it: most recently used first when it can.
func (c *Cache) durableTier() (int, scanFunc) {
	for i := 1; i < len(c.tiers); i++ {
		switch t := c.tiers[i].tier.(type) {
		case HotScanner:
			return i, t.ScanHot
		case Scanner:
			return i, t.Scan
		}
	}
	return 0, nil
}
