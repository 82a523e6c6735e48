package tier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
)

// found is an entry on its way back up the chain. fresh entries come from
// the loader and get each tier's full TTL (stretched by jitter); the others
// were found in a lower tier and keep the expiry they have.
type found struct {
	key    string
	entry  Entry
	fresh  bool
	jitter float64 // factor on the TTLs of a fresh entry; 0 is 1
	// lease, when set, is this flight's lease on the key: the top tier is
	// filled through it. skipTop leaves the top tier alone (someone else
	// holds the lease). overwrite sets instead of adding (a refresh
	// replaces the value it refreshes).
	lease     *Lease
	skipTop   bool
	overwrite bool
	// readAt is when the read that found the entry began, for result.late;
	// zero outside leased loads.
	readAt time.Time
}

// load resolves keys that missed the tiers above from: it asks tiers[from:]
// in order, then the loader for what is still missing, and writes what it
// finds into the tiers above the one that had it before resolving each key.
// With leases, it asks the top tier for the keys' leases first (see
// leaseload.go). It runs inside a flight, on the flight's context.
func (c *Cache) load(ctx context.Context, keys []string, from int, resolve func(string, result)) {
	gens := make(map[string]uint64, len(keys))
	for _, k := range keys {
		gens[k] = c.gens.current(k)
	}
	if c.leaser != nil {
		c.loadLeased(ctx, keys, gens, resolve)
		return
	}
	c.loadChain(ctx, keys, from, gens, resolve)
}

// loadChain is load without leases: tiers[from:] in order, then the
// loader, each key backfilled into the tiers above where it was found.
func (c *Cache) loadChain(ctx context.Context, keys []string, from int, gens map[string]uint64, resolve func(string, result)) {
	stale := make(map[string]Entry)
	remaining := keys
	for i := from; i < len(c.tiers) && len(remaining) > 0; i++ {
		hits, misses := c.lookupTier(ctx, c.tiers[i], remaining, stale, nil)
		c.backfill(ctx, hits, i, gens, resolve)
		remaining = misses
	}
	for start := 0; start < len(remaining); start += c.loadBatch {
		chunk := remaining[start:min(start+c.loadBatch, len(remaining))]
		begun := c.clock.Now()
		values, err := c.callLoader(ctx, chunk)
		if err != nil {
			c.failLoad(chunk, err, stale, resolve)
			continue
		}
		c.backfill(ctx, c.freshFound(chunk, values, begun), len(c.tiers), gens, resolve)
	}
}

// freshFound turns what one Load call returned for chunk into entries on
// their way up: a value, or a negative entry for a key the source lacks.
// When the chain records loads (leases, early refresh), each carries when
// the load began and how long it took.
func (c *Cache) freshFound(chunk []string, values map[string][]byte, begun time.Time) []found {
	var loaded time.Time
	var delta time.Duration
	if c.recordLoads {
		loaded, delta = begun, c.clock.Now().Sub(begun)
	}
	out := make([]found, 0, len(chunk))
	for _, k := range chunk {
		e := Entry{Negative: true, Loaded: loaded, Delta: delta}
		if v, ok := values[k]; ok {
			e = Entry{Value: v, Loaded: loaded, Delta: delta}
		}
		out = append(out, found{key: k, entry: e, fresh: true, jitter: c.jitterFactor()})
	}
	return out
}

// lookupTier asks one tier for keys. Fresh entries are hits; everything else
// (absent, expired, or the tier failing) is a miss. Expired values are kept
// in stale, when it is not nil, in case the loader fails and stale-if-error
// applies. accept, when not nil, can turn a fresh entry away; it is then a
// miss too.
func (c *Cache) lookupTier(ctx context.Context, t *chainTier, keys []string, stale map[string]Entry, accept func(key string, e Entry) bool) (hits []found, misses []string) {
	var entries map[string]Entry
	if mg, ok := t.tier.(MultiGetter); ok && len(keys) > 1 {
		var err error
		entries, err = t.getMulti(ctx, mg, keys)
		if err != nil {
			t.ctr.errors.Add(1)
		}
	} else {
		entries = make(map[string]Entry, len(keys))
		for _, k := range keys {
			e, err := t.get(ctx, k)
			switch {
			case err == nil:
				entries[k] = e
			case !errors.Is(err, ErrMiss):
				t.ctr.errors.Add(1)
			}
		}
	}
	now := c.clock.Now()
	for _, k := range keys {
		e, ok := entries[k]
		switch {
		case !ok:
			misses = append(misses, k)
		case e.Expired(now):
			if !e.Negative && stale != nil && (accept == nil || accept(k, e)) {
				if old, seen := stale[k]; !seen || e.Expires.After(old.Expires) {
					stale[k] = e
				}
			}
			misses = append(misses, k)
		case accept != nil && !accept(k, e):
			misses = append(misses, k)
		default:
			hits = append(hits, found{key: k, entry: e})
		}
	}
	t.ctr.hits.Add(int64(len(hits)))
	t.ctr.misses.Add(int64(len(misses)))
	return hits, misses
}

// callLoader runs one Load call and counts it.
func (c *Cache) callLoader(ctx context.Context, keys []string) (map[string][]byte, error) {
	c.ctr.statements.Add(1)
	c.ctr.loadKeys.Add(int64(len(keys)))
	values, err := c.loadObserved(ctx, keys)
	if err != nil {
		c.ctr.loadErrors.Add(1)
		return nil, err
	}
	n := 0
	for _, k := range keys {
		if _, ok := values[k]; ok {
			n++
		}
	}
	c.ctr.loaded.Add(int64(n))
	c.ctr.notFound.Add(int64(len(keys) - n))
	return values, nil
}

// failLoad answers keys whose load failed: with a recently expired copy when
// stale-if-error allows it, otherwise with the loader's error.
func (c *Cache) failLoad(keys []string, err error, stale map[string]Entry, resolve func(string, result)) {
	now := c.clock.Now()
	for _, k := range keys {
		if e, ok := stale[k]; ok && c.staleIfErr > 0 && now.Sub(e.Expires) <= c.staleIfErr {
			c.ctr.staleServed.Add(1)
			resolve(k, result{value: e.Value})
			continue
		}
		resolve(k, result{err: fmt.Errorf("tier: load %q: %w", k, err)})
	}
}

// backfill writes each entry into the tiers above `above` (all tiers when
// above == len(c.tiers)), bottom up, then resolves its key. Writes into a
// tier that can add use add, so a value some other writer stored meanwhile
// is never overwritten. A key invalidated since the load began (its
// generation moved) is not written, and a write that raced with the
// invalidation is undone.
//
// The writes run on a context detached from the callers': the value is
// already paid for, and storing it is what keeps the next caller off the
// source.
func (c *Cache) backfill(ctx context.Context, items []found, above int, gens map[string]uint64, resolve func(string, result)) {
	if len(items) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	now := c.clock.Now()
	one := func(it found) {
		o := c.backfillOne(ctx, it, above, gens[it.key], now)
		readAt := it.readAt
		if !o.filledAt.IsZero() {
			// The lease held until the fill landed: no invalidation came
			// after the read and before the fill began.
			readAt = o.filledAt
		}
		resolve(it.key, entryResult(it.key, it.entry).at(readAt))
	}
	if len(items) == 1 || above == 0 {
		for _, it := range items {
			one(it)
		}
		return
	}
	var g errgroup.Group
	g.SetLimit(c.backfillPar)
	for _, it := range items {
		g.Go(func() error { one(it); return nil })
	}
	_ = g.Wait()
}

// backfillOne writes one entry into the tiers above `above` and reports how
// many tiers took it, and whether one already held the key or failed.
func (c *Cache) backfillOne(ctx context.Context, it found, above int, gen uint64, now time.Time) (o backfillOutcome) {
	negativeOff := it.entry.Negative && it.fresh && c.negativeTTL <= 0
	if negativeOff && it.lease == nil {
		return o // negative caching is off
	}
	written := make([]*chainTier, 0, above)
	for j := above - 1; j >= 0; j-- {
		// A fill through a lease needs no generation check: any
		// invalidation of the key, here or elsewhere, changes what the
		// lease is checked against, and the fill is refused. Skipping it
		// would leave the lease for the other processes to wait out.
		if !c.gens.settled(it.key, gen) && (j > 0 || it.lease == nil) {
			if it.lease == nil {
				break
			}
			continue
		}
		t := c.tiers[j]
		var err error
		switch {
		case j == 0 && it.lease != nil:
			start := time.Now()
			if err = c.fill(ctx, it, now); err == nil {
				o.filledAt = start
			}
		case j == 0 && it.skipTop, negativeOff:
			continue
		case t.adder != nil && !it.overwrite:
			err = t.add(ctx, it.key, c.entryFor(it, t, now))
		default:
			err = t.set(ctx, it.key, c.entryFor(it, t, now))
		}
		switch {
		case err == nil:
			t.ctr.backfills.Add(1)
			written = append(written, t)
		case errors.Is(err, ErrLeaseLost):
			// An invalidation came first, here or in another process;
			// what it left in the top tier stays.
			c.ctr.leaseRefused.Add(1)
		case errors.Is(err, ErrNotStored):
			o.present = true // someone stored a value first: keep it
		case errors.Is(err, ErrTooLarge):
			// This tier cannot hold it; the tiers below still serve it.
		default:
			o.failed = true
			t.ctr.errors.Add(1)
		}
	}
	o.written = len(written)
	if len(written) > 0 && !c.gens.settled(it.key, gen) {
		// An invalidation ran while we wrote; it bumped the generation
		// before touching any tier, so undoing our writes now leaves the
		// key invalidated everywhere, whichever ran first in each tier.
		// With leases the top tier needs no undo, and must not get one:
		// the invalidation replaced what we wrote there, or refused it,
		// and a delete would remove its marker.
		for _, t := range written {
			if c.leaser != nil && t == c.tiers[0] {
				continue
			}
			if err := t.delete(ctx, it.key); err != nil {
				t.ctr.errors.Add(1)
			}
		}
		o.written = 0
	}
	return o
}

// fill writes a loaded entry into the top tier through the flight's lease
// on the key, keeping the invalidation marker the lease reported.
func (c *Cache) fill(ctx context.Context, it found, now time.Time) error {
	e := c.entryFor(it, c.tiers[0], now)
	err := c.leaser.Fill(ctx, it.key, *it.lease, LeaseWrite{Entry: &e, Marker: it.lease.Marker, Grace: c.grace})
	if err == nil {
		c.ctr.leaseFills.Add(1)
	}
	return err
}

type backfillOutcome struct {
	written int
	present bool
	failed  bool
	// filledAt is when a fill through a lease that landed began.
	filledAt time.Time
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
	case it.fresh && e.Negative && it.lease != nil && t == c.tiers[0] && c.negativeTTL < leaseNegativeTTL:
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

// notFound is the error a caller gets for a key the source does not have.
func notFound(key string) error {
	return fmt.Errorf("tier: get %q: %w", key, ErrNotFound)
}
