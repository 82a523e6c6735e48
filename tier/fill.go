package tier

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Fills off the caller's path.
//
// A flight answers its callers as soon as it has a value, from a lower tier
// or the source, and only then writes the value into the tiers above where
// it was found. The writes run in the flight's goroutine, which Close waits
// for, at most WithFillConcurrency flights at once; a panic in a tier is
// recovered and counted. Until its writes are done the flight's keys stay
// joinable with the published value, so a caller arriving in between does
// not miss the tiers and load the key again. Every invalidation guarantee
// holds as when the writes came first: a write checks the key's generation
// before and after, whenever it runs (see generations).

// DefaultFillConcurrency is how many flights write into the tiers at once
// unless WithFillConcurrency says otherwise.
const DefaultFillConcurrency = 64

// filler bounds the flights writing into the tiers. The zero value is not
// usable; use newFiller.
type filler struct {
	slots chan struct{}
	// pending counts fills queued or running; done, those finished;
	// panics, those a tier panicked in.
	pending, done, panics atomic.Int64
}

func newFiller(n int) *filler { return &filler{slots: make(chan struct{}, n)} }

// hold counts a fill about to be handed to do, so that Pending covers it
// from before its flight answers its callers.
func (f *filler) hold() { f.pending.Add(1) }

// do runs write, held with hold, once a slot is free, and recovers a panic
// in it.
func (f *filler) do(write func()) {
	f.slots <- struct{}{}
	defer func() {
		<-f.slots
		if r := recover(); r != nil {
			f.panics.Add(1)
		}
		f.pending.Add(-1)
		f.done.Add(1)
	}()
	write()
}

// backfill answers each item's key, then writes the items into the tiers
// above `above` (all tiers when above == len(c.tiers)), off the callers'
// path, and lets the keys go from the flight group: later callers look
// them up in the tiers. The writes run on a context detached from the
// callers': the value is already paid for, and storing it is what keeps
// the next caller off the source.
func (r *loadRun) backfill(items []found, above int) {
	c := r.c
	if len(items) == 0 {
		return
	}
	if above > 0 {
		c.fills.hold()
	}
	for i, it := range items {
		res := entryResult(it.key, it.entry).at(it.readAt)
		if it.lease != nil && above > c.leaseAt {
			items[i].confirm = newConfirmation()
			res.confirm = items[i].confirm
		}
		r.resolve(it.key, res)
	}
	if above == 0 {
		return
	}
	c.fills.do(func() {
		defer func() {
			for _, it := range items {
				if it.confirm != nil {
					it.confirm.set(time.Time{}) // no fill landed
				}
				c.flights.finishKey(r.f, it.key)
			}
		}()
		c.writeBack(context.WithoutCancel(r.ctx), items, above, r.gens)
	})
}

// backfillOne writes one entry into the tiers above `above` and reports how
// many tiers took it, and whether one already held the key or failed.
func (c *Cache) backfillOne(ctx context.Context, it found, above int, gen uint64, _ time.Time) backfillOutcome {
	return c.writeBack(ctx, []found{it}, above, map[string]uint64{it.key: gen})[0]
}

type backfillOutcome struct {
	written int
	present bool
	failed  bool
}

// writeBack writes items into the tiers above `above`, bottom up, one tier
// at a time, so that each tier gets the whole batch at once: one pipelined
// fill (MultiFiller) or add (BulkAdder) when it can take them so. Writes
// into a tier that can add use add, so a value some other writer stored
// meanwhile is never overwritten. A key invalidated since the load began
// (its generation moved) is not written, and a write that raced with the
// invalidation is undone.
func (c *Cache) writeBack(ctx context.Context, items []found, above int, gens map[string]uint64) []backfillOutcome {
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.key
	}
	wb := c.writes.start(keys)
	defer c.writes.finish(wb, keys)
	now := c.clock.Now()
	out := make([]backfillOutcome, len(items))
	written := make([][]*chainTier, len(items))
	stopped := make([]bool, len(items))
	for i, it := range items {
		// A negative entry is written only with negative caching on, or
		// through a lease, to tell the waiters.
		stopped[i] = it.entry.Negative && it.fresh && c.negativeTTL <= 0 && it.lease == nil
	}
	for j := above - 1; j >= 0; j-- {
		t := c.tiers[j]
		var batch []int
		for i, it := range items {
			if stopped[i] {
				continue
			}
			leased := j == c.leaseAt && it.lease != nil
			// A fill through a lease needs no generation check: any
			// invalidation of the key, here or elsewhere, changes what the
			// lease is checked against, and the fill is refused. Skipping
			// it would leave the lease for the other processes to wait out.
			if !leased && !c.gens.settled(it.key, gens[it.key]) {
				stopped[i] = it.lease == nil
				continue
			}
			if c.leaser != nil && j <= c.leaseAt && it.skipTop {
				continue // someone else's lease: the leasing tier and those above are theirs
			}
			if it.entry.Negative && it.fresh && c.negativeTTL <= 0 && !leased {
				continue
			}
			batch = append(batch, i)
		}
		if len(batch) == 0 {
			continue
		}
		errs := c.writeTier(ctx, j, items, batch, now)
		for n, i := range batch {
			switch err := errs[n]; {
			case err == nil:
				t.ctr.backfills.Add(1)
				written[i] = append(written[i], t)
			case errors.Is(err, ErrLeaseLost):
				// An invalidation came first, here or in another process;
				// what it left stays, and the tiers above get nothing.
				c.ctr.leaseRefused.Add(1)
				stopped[i] = true
			case errors.Is(err, ErrNotStored):
				out[i].present = true // someone stored a value first: keep it
			case errors.Is(err, ErrTooLarge):
				// This tier cannot hold it; the tiers below still serve it.
			default:
				out[i].failed = true
				t.ctr.errors.Add(1)
			}
		}
	}
	for i, it := range items {
		out[i].written = len(written[i])
		if len(written[i]) == 0 || c.gens.settled(it.key, gens[it.key]) {
			continue
		}
		// An invalidation ran while we wrote; it bumped the generation
		// before touching any tier, so undoing our writes now leaves the
		// key invalidated everywhere, whichever ran first in each tier.
		// The leasing tier needs no undo, and must not get one: the
		// invalidation replaced what we wrote there, or refused it, and a
		// delete would remove its marker.
		for _, t := range written[i] {
			if c.leaser != nil && t == c.tiers[c.leaseAt] {
				continue
			}
			if err := t.delete(ctx, it.key); err != nil {
				t.ctr.errors.Add(1)
			}
		}
		out[i].written = 0
	}
	return out
}

// writeTier writes items[batch] into tier j and returns one error per
// write, in batch's order: fills through leases, adds, or sets.
func (c *Cache) writeTier(ctx context.Context, j int, items []found, batch []int, now time.Time) []error {
	t := c.tiers[j]
	errs := make([]error, len(batch))
	var fills, adds, sets []int // positions in batch
	for n, i := range batch {
		switch it := items[i]; {
		case j == c.leaseAt && it.lease != nil:
			fills = append(fills, n)
		case t.adder != nil && !it.overwrite:
			adds = append(adds, n)
		default:
			sets = append(sets, n)
		}
	}
	if len(fills) > 0 {
		start := time.Now()
		c.fillLeased(ctx, t, items, batch, fills, errs, now)
		for _, n := range fills {
			if it := items[batch[n]]; it.confirm != nil && errs[n] == nil {
				it.confirm.set(start)
			}
		}
	}
	if ba, ok := t.tier.(BulkAdder); ok && len(adds) > 1 {
		c.addBulk(ctx, ba, t, items, batch, adds, errs, now)
		adds = nil
	}
	c.each(len(adds), func(m int) {
		n := adds[m]
		errs[n] = t.add(ctx, items[batch[n]].key, c.entryFor(items[batch[n]], t, now))
	})
	c.each(len(sets), func(m int) {
		n := sets[m]
		errs[n] = t.set(ctx, items[batch[n]].key, c.entryFor(items[batch[n]], t, now))
	})
	return errs
}

// each runs fn(0) ... fn(n-1), WithBackfillConcurrency of them at once;
// a single one in the caller's goroutine. A panic in one is raised again
// in the caller once all have ended, for the filler to recover.
func (c *Cache) each(n int, fn func(int)) {
	if n <= 1 {
		if n == 1 {
			fn(0)
		}
		return
	}
	var (
		g    errgroup.Group
		once sync.Once
		pv   any
	)
	g.SetLimit(c.backfillPar)
	for i := range n {
		g.Go(func() error {
			defer func() {
				if r := recover(); r != nil {
					once.Do(func() { pv = r })
				}
			}()
			fn(i)
			return nil
		})
	}
	_ = g.Wait()
	if pv != nil {
		panic(pv)
	}
}

// fillLeased fills the keys at positions fills of batch through their
// leases: one FillMulti when the leasing tier can, else one Fill each.
func (c *Cache) fillLeased(ctx context.Context, t *chainTier, items []found, batch, fills []int, errs []error, now time.Time) {
	lfs := make([]LeaseFill, len(fills))
	for m, n := range fills {
		it := items[batch[n]]
		e := c.entryFor(it, t, now)
		lfs[m] = LeaseFill{Key: it.key, Lease: *it.lease, Write: LeaseWrite{Entry: &e, Marker: it.lease.Marker, Grace: c.grace}}
	}
	var ferrs []error
	if mf, ok := c.leaser.(MultiFiller); ok && len(lfs) > 1 {
		ferrs = mf.FillMulti(ctx, lfs)
	} else {
		ferrs = make([]error, len(lfs))
		c.each(len(lfs), func(m int) {
			ferrs[m] = c.leaser.Fill(ctx, lfs[m].Key, lfs[m].Lease, lfs[m].Write)
		})
	}
	for m, n := range fills {
		if m < len(ferrs) {
			errs[n] = ferrs[m]
		} else {
			errs[n] = errors.New("tier: fill: no answer")
		}
		if errs[n] == nil {
			c.ctr.leaseFills.Add(1)
		}
	}
}

// addBulk adds the keys at positions adds of batch with one AddBulk.
func (c *Cache) addBulk(ctx context.Context, ba BulkAdder, t *chainTier, items []found, batch, adds []int, errs []error, now time.Time) {
	pos := make(map[string]int, len(adds))
	for _, n := range adds {
		pos[items[batch[n]].key] = n
		errs[n] = errors.New("tier: bulk add: no answer")
	}
	var mu sync.Mutex
	entries := func(yield func(string, Entry) bool) {
		for _, n := range adds {
			it := items[batch[n]]
			if !yield(it.key, c.entryFor(it, t, now)) {
				return
			}
		}
	}
	if err := t.addBulk(ctx, ba, entries, func(key string, err error) {
		mu.Lock()
		errs[pos[key]] = err
		mu.Unlock()
	}); err != nil {
		t.ctr.errors.Add(1)
	}
}

// entryFor is the entry to store in t: fresh values get t's TTL (the
// negative TTL for negative ones, capped by t's), stretched by the key's
// jitter; values from a lower tier keep their remaining time, capped by
// t's TTL. A fresh negative entry filled through a lease lives at least
// leaseNegativeTTL, even with negative caching off: it is how the callers
// waiting for the lease learn the answer.
func (c *Cache) entryFor(it found, t *chainTier, now time.Time) Entry {
	e := it.entry
	ttl := scaled(t.ttl, it.jitter)
	switch {
	case it.fresh && e.Negative && it.lease != nil && t == c.tiers[c.leaseAt] && c.negativeTTL < leaseNegativeTTL:
		e.Expires = capExpiry(expiry(now, leaseNegativeTTL), now, ttl)
	case it.fresh && e.Negative:
		e.Expires = capExpiry(expiry(now, scaled(c.negativeTTL, it.jitter)), now, ttl)
	case it.fresh:
		e.Expires = expiry(now, ttl)
	default:
		e.Expires = capExpiry(e.Expires, now, t.ttl)
	}
	return e
}

// leaseNegativeTTL is the shortest life of a negative entry filled through
// a lease.
const leaseNegativeTTL = time.Second
