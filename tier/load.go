package tier

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The read path.
//
// Get claims its key first, before any I/O: concurrent callers of a key
// share one flight, which walks the chain once for all of them, the top
// tier included. The flight asks the tiers in order down to the arbiter's
// (every tier, without leases; down to the leasing tier with them); what is
// still missing goes to the arbiter, which settles who loads it: this
// process at once (plainArbiter), or the one process that wins the key's
// lease (leaseArbiter, leaseload.go). Whatever a flight finds, it hands its
// callers first and writes into the tiers above after (fill.go).

// found is an entry on its way back up the chain. fresh entries come from
// the loader and get each tier's full TTL (stretched by jitter); the others
// were found in a lower tier and keep the expiry they have.
type found struct {
	key    string
	entry  Entry
	fresh  bool
	jitter float64 // factor on the TTLs of a fresh entry; 0 is 1
	// lease, when set, is this flight's lease on the key: the leasing tier
	// is filled through it. skipTop leaves the leasing tier and those above
	// it alone (someone else holds the lease). overwrite sets instead of
	// adding (a refresh replaces the value it refreshes).
	lease     *Lease
	skipTop   bool
	overwrite bool
	// readAt is when the read that found the entry began, for result.late;
	// zero without leases. confirm, with a lease, is set once the fill
	// through it is done.
	readAt  time.Time
	confirm *confirmation
}

// Get returns the value of key from the first tier that holds it, or from
// the loader, filling the tiers above on the way back. It returns an error
// wrapping ErrNotFound when the source has no such key.
//
// Concurrent Gets of a key share one trip through the chain. Each caller
// waits only as long as its own ctx allows; the trip goes on for the
// others. A ctx already done returns its error before any I/O.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, error) {
	if err := c.checkKey(key); err != nil {
		return nil, fmt.Errorf("tier: get: %w", err)
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.ctr.gets.Add(1)
	var claimed time.Time
	if c.leaser != nil {
		claimed = time.Now()
	}
	for {
		cl, f, loadCtx := c.flights.claimOne(ctx, key)
		if f != nil {
			c.startOne(loadCtx, f)
		} else {
			c.ctr.sharedWaits.Add(1)
		}
		res := wait(ctx, cl)
		if res.late(claimed) {
			res = res.confirmed(ctx)
		}
		if !res.late(claimed) {
			return res.value, res.err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// The flight this call joined had read the key before the call
		// began; an invalidation in another process may lie in between.
		c.ctr.leaseRejoins.Add(1)
		c.flights.forgetCall(key, cl)
	}
}

// start runs flight f for keys: the lookup in the top tier in the
// caller's goroutine, so that a hit costs no goroutine, and the rest of
// the trip, if any, in the background. The caller that starts a trip waits
// for the top tier's answer (bounded by the tier's own timeout) even when
// its context ends meanwhile: the others may be waiting for it.
func (c *Cache) start(ctx context.Context, f *flight, keys []string) {
	c.ctr.flights.Add(1)
	r := &loadRun{c: c, ctx: ctx, f: f}
	misses, panicked := r.first(keys)
	if panicked != nil || len(misses) == 0 {
		c.flights.exit(f, panicked)
		return
	}
	go r.rest(f, misses)
}

// startOne is start for the one-key flight of a Get, the path of every
// memcached hit: the same steps, with nothing allocated for a hit.
func (c *Cache) startOne(ctx context.Context, f *flight) {
	if c.split == 0 || c.beta > 0 || c.grace > 0 {
		c.start(ctx, f, []string{f.key})
		return
	}
	c.ctr.flights.Add(1)
	var readAt time.Time
	if c.leaser != nil {
		readAt = time.Now()
	}
	var stale map[string]Entry
	e, hit, panicked := c.firstOne(ctx, f.key, &stale)
	if panicked != nil || hit {
		if hit {
			f.resolve(f.key, entryResult(f.key, e).at(readAt))
		}
		c.flights.exit(f, panicked)
		return
	}
	r := &loadRun{c: c, ctx: ctx, f: f, stale: stale}
	go r.rest(f, []string{f.key})
}

// firstOne is lookupOne in the top tier, with a panic recovered and
// returned.
func (c *Cache) firstOne(ctx context.Context, key string, stale *map[string]Entry) (e Entry, hit bool, panicked any) {
	defer func() {
		if panicked = recover(); panicked != nil {
			c.ctr.panics.Add(1)
		}
	}()
	e, hit = c.lookupOne(ctx, c.tiers[0], key, stale, nil)
	return e, hit, nil
}

// first is lookupFirst, with a panic recovered and returned.
func (r *loadRun) first(keys []string) (misses []string, panicked any) {
	defer func() {
		if panicked = recover(); panicked != nil {
			r.c.ctr.panics.Add(1)
		}
	}()
	return r.lookupFirst(keys), nil
}

// rest is loadRest in the background, ending flight f.
func (r *loadRun) rest(f *flight, keys []string) {
	var panicked any
	defer func() { r.c.flights.exit(f, panicked) }()
	defer func() {
		if panicked = recover(); panicked != nil {
			r.c.ctr.panics.Add(1)
		}
	}()
	r.loadRest(keys)
}

// loadRun is one flight's trip through the chain. It belongs to the
// flight's goroutine.
type loadRun struct {
	c   *Cache
	ctx context.Context
	f   *flight
	// gens are the keys' generations before the first lookup whose finds
	// are written into a tier.
	gens map[string]uint64
	// stale keeps expired copies for stale-if-error (with leases, once
	// they have passed the marker check); nil until the first.
	stale map[string]Entry
	// askedAt is when each key's lease was last asked for: what the lease
	// reply says (its marker above all) is true from then on.
	askedAt map[string]time.Time
	// due are hits to refresh in the background once the flight is done.
	due map[string]Entry
}

// resolve answers the callers of key.
func (r *loadRun) resolve(key string, res result) { r.f.resolve(key, res) }

// lookupFirst asks the top tier for keys, answers the hits, and returns
// the misses; without tiers, every key.
func (r *loadRun) lookupFirst(keys []string) []string {
	if r.c.split == 0 {
		return keys
	}
	misses := r.lookup(0, keys)
	if len(misses) == 0 {
		r.refreshDue()
	}
	return misses
}

// loadRest resolves keys that missed the top tier: it asks the tiers down
// to the arbiter's in order, each hit answered and written into the tiers
// above it, and hands the arbiter what is still missing.
func (r *loadRun) loadRest(keys []string) {
	c := r.c
	// The generations are taken after the top tier's lookup, which fills
	// nothing, and before any lookup whose finds are written anywhere.
	r.gens = make(map[string]uint64, len(keys))
	for _, k := range keys {
		r.gens[k] = c.gens.current(k)
	}
	for i := 1; i < c.split && len(keys) > 0; i++ {
		keys = r.lookup(i, keys)
	}
	if len(keys) > 0 {
		c.arb.settle(r, keys)
	}
	r.refreshDue()
}

// refreshDue starts the refreshes the trip found due.
func (r *loadRun) refreshDue() {
	if len(r.due) > 0 {
		r.c.refreshSoon(r.due)
		r.due = nil
	}
}

// lookup asks tier i for keys, answers the hits, and returns the misses.
// Hits at the refreshing tier may draw an early refresh; expired values
// there may be served while they are reloaded.
func (r *loadRun) lookup(i int, keys []string) []string {
	c := r.c
	var readAt time.Time
	if c.leaser != nil {
		readAt = time.Now()
	}
	hits, misses := c.lookupTier(r.ctx, c.tiers[i], keys, &r.stale, nil)
	if i == c.refreshAt && (c.beta > 0 || c.grace > 0) {
		misses = r.refreshing(hits, misses, readAt)
	}
	for j := range hits {
		hits[j].readAt = readAt
	}
	r.backfill(hits, i)
	return misses
}

// fromSource loads keys from the source, one Load call per batch, and
// writes them into every tier.
func (r *loadRun) fromSource(keys []string) {
	c := r.c
	for start := 0; start < len(keys); start += c.loadBatch {
		chunk := keys[start:min(start+c.loadBatch, len(keys))]
		begun := c.clock.Now()
		values, err := c.callLoader(r.ctx, chunk)
		if err != nil {
			c.failLoad(chunk, err, r.stale, r.resolve)
			continue
		}
		r.backfill(c.freshFound(chunk, values, begun), len(c.tiers))
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
// in *stale, when stale is not nil (the map made on first use), in case
// the loader fails and stale-if-error applies. accept, when not nil, can
// turn a fresh entry away; it is then a miss too.
func (c *Cache) lookupTier(ctx context.Context, t *chainTier, keys []string, stale *map[string]Entry, accept func(key string, e Entry) bool) (hits []found, misses []string) {
	if len(keys) == 1 {
		if e, hit := c.lookupOne(ctx, t, keys[0], stale, accept); hit {
			return []found{{key: keys[0], entry: e}}, nil
		}
		return nil, keys
	}
	var entries map[string]Entry
	if mg, ok := t.tier.(MultiGetter); ok {
		var err error
		entries, err = mg.GetMulti(ctx, keys)
		if err != nil {
			t.ctr.errors.Add(1)
		}
	} else {
		entries = make(map[string]Entry, len(keys))
		for _, k := range keys {
			if e, ok := c.getOne(ctx, t, k); ok {
				entries[k] = e
			}
		}
	}
	now := c.clock.Now()
	for _, k := range keys {
		e, ok := entries[k]
		if c.fresh(t, k, e, ok, now, stale, accept) {
			hits = append(hits, found{key: k, entry: e})
		} else {
			misses = append(misses, k)
		}
	}
	return hits, misses
}

// lookupOne is lookupTier for one key: whether t holds a fresh entry.
func (c *Cache) lookupOne(ctx context.Context, t *chainTier, key string, stale *map[string]Entry, accept func(key string, e Entry) bool) (Entry, bool) {
	e, ok := c.getOne(ctx, t, key)
	return e, c.fresh(t, key, e, ok, c.clock.Now(), stale, accept)
}

// getOne gets key from t; ok is false on a miss of any kind.
func (c *Cache) getOne(ctx context.Context, t *chainTier, key string) (Entry, bool) {
	e, err := t.tier.Get(ctx, key)
	if err != nil && !errors.Is(err, ErrMiss) {
		t.ctr.errors.Add(1)
	}
	return e, err == nil
}

// fresh decides whether e, what t holds for key (ok false when nothing),
// is a hit at now, and counts it; see lookupTier.
func (c *Cache) fresh(t *chainTier, key string, e Entry, ok bool, now time.Time, stale *map[string]Entry, accept func(key string, e Entry) bool) bool {
	hit := false
	switch {
	case !ok:
	case e.Expired(now):
		if !e.Negative && stale != nil && (accept == nil || accept(key, e)) {
			if *stale == nil {
				*stale = make(map[string]Entry)
			}
			if old, seen := (*stale)[key]; !seen || e.Expires.After(old.Expires) {
				(*stale)[key] = e
			}
		}
	case accept != nil && !accept(key, e):
	default:
		hit = true
	}
	if hit {
		t.ctr.hits.Add(1)
	} else {
		t.ctr.misses.Add(1)
	}
	return hit
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

// entryResult is what a caller gets for an entry found in a tier.
func entryResult(key string, e Entry) result {
	if e.Negative {
		return result{err: notFound(key)}
	}
	return result{value: e.Value}
}

// notFound is the error a caller gets for a key the source does not have.
func notFound(key string) error {
	return fmt.Errorf("tier: get %q: %w", key, ErrNotFound)
}
