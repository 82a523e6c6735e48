package tier

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Expiry without cliffs.
//
// A hot key that expires sends every caller to the source at the same
// moment. Two options keep that from happening:
//
// Early refresh (WithEarlyRefresh) is probabilistic early recomputation
// (XFetch): a top-tier hit on an entry whose load took Delta reloads it in
// the background when
//
//	now - Delta * beta * ln(rand()) >= Expires
//
// so the closer the expiry and the slower the load, the likelier a hit
// refreshes; with many hits one of them does so shortly before the entry
// expires, and the callers never see it expire. beta > 1 refreshes
// earlier, beta < 1 later.
//
// Stale-while-revalidate (WithStaleWhileRevalidate) answers a top-tier hit
// on an entry that expired less than the grace window ago with that value
// at once, and reloads it in the background. The top tier keeps entries
// that long past their expiry when the chain writes them through leases.
//
// Either way the reload is a flight of its own: callers that miss the key
// meanwhile join it, it runs on no caller's context, Close waits for it,
// a panic in it is recovered and counted, and in this process only one
// runs per key, and at most WithRefreshConcurrency at once. With leases it
// first takes the key's lease over the
// current value (LeaseRequest.Refresh), so only one process refreshes a
// key; the others keep serving the current value until it fills.

// WithEarlyRefresh turns on early refresh with the given beta (1 is the
// usual choice; see the Expiry section of the package documentation).
// Entries loaded before it was on carry no load time and are not
// refreshed early.
func WithEarlyRefresh(beta float64) Option {
	return func(c *config) error {
		if !(beta > 0 && beta <= 100) {
			return fmt.Errorf("tier: WithEarlyRefresh: beta %v, want more than 0 and at most 100", beta)
		}
		c.beta = beta
		return nil
	}
}

// DefaultRefreshConcurrency is how many background refreshes run at once
// unless WithRefreshConcurrency says otherwise.
const DefaultRefreshConcurrency = 16

// WithRefreshConcurrency bounds the background refreshes (early refresh,
// stale-while-revalidate) running at once. A hit that would start one more
// starts none (counted in Stats().Refresh.Throttled); the value it found
// is served all the same, and a later hit tries again. Default
// DefaultRefreshConcurrency.
func WithRefreshConcurrency(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("tier: WithRefreshConcurrency: %d, want at least 1", n)
		}
		c.refreshMax = n
		return nil
	}
}

// WithStaleWhileRevalidate lets a Get answer with a value that expired in
// the top tier less than grace ago, and reload it in the background. It
// needs WithLeases: the top tier keeps expired values for grace only when
// the chain writes them through leases (Leaser.Fill, Leaser.Invalidate).
func WithStaleWhileRevalidate(grace time.Duration) Option {
	return func(c *config) error {
		if grace <= 0 {
			return fmt.Errorf("tier: WithStaleWhileRevalidate: grace %v, want a positive duration", grace)
		}
		c.grace = grace
		return nil
	}
}

// getTopRefreshing is getTop with early refresh and stale-while-revalidate.
// ok is false on a miss of any kind.
func (c *Cache) getTopRefreshing(ctx context.Context, key string) (v []byte, err error, ok bool) {
	t := c.tiers[0]
	e, err := t.get(ctx, key)
	if err != nil {
		t.ctr.misses.Add(1)
		if !errors.Is(err, ErrMiss) {
			t.ctr.errors.Add(1)
		}
		return nil, nil, false
	}
	now := c.clock.Now()
	switch {
	case !e.Expired(now):
		t.ctr.hits.Add(1)
		if c.refreshEarly(e, now) {
			c.ctr.refreshEarly.Add(1)
			c.refreshSoon(key, e)
		}
		if e.Negative {
			return nil, notFound(key), true
		}
		return e.Value, nil, true
	case c.servesStale(e, now):
		t.ctr.misses.Add(1)
		c.ctr.refreshStale.Add(1)
		c.refreshSoon(key, e)
		return e.Value, nil, true
	default:
		t.ctr.misses.Add(1)
		return nil, nil, false
	}
}

// refreshTop applies early refresh and stale-while-revalidate to what a
// GetMulti found in the top tier: it starts the refreshes due, puts the
// stale values it may serve in out, and returns the misses left.
func (c *Cache) refreshTop(hits []found, stale map[string]Entry, misses []string, out map[string][]byte) []string {
	now := c.clock.Now()
	for _, h := range hits {
		if c.refreshEarly(h.entry, now) {
			c.ctr.refreshEarly.Add(1)
			c.refreshSoon(h.key, h.entry)
		}
	}
	if len(stale) == 0 {
		return misses
	}
	left := misses[:0]
	for _, k := range misses {
		if e, ok := stale[k]; ok && c.servesStale(e, now) {
			c.ctr.refreshStale.Add(1)
			c.refreshSoon(k, e)
			out[k] = e.Value
			continue
		}
		left = append(left, k)
	}
	return left
}

// refreshEarly reports whether a hit on e at now should reload it: the
// XFetch test.
func (c *Cache) refreshEarly(e Entry, now time.Time) bool {
	if c.beta <= 0 || e.Negative || e.Expires.IsZero() || e.Delta <= 0 {
		return false
	}
	u := 1 - c.rand() // in (0, 1]
	gap := time.Duration(-float64(e.Delta) * c.beta * math.Log(u))
	return !now.Add(gap).Before(e.Expires)
}

// servesStale reports whether stale-while-revalidate lets e be served at
// now.
func (c *Cache) servesStale(e Entry, now time.Time) bool {
	return c.grace > 0 && !e.Negative && e.Expired(now) && now.Before(e.Expires.Add(c.grace))
}

// refreshSoon reloads key in the background, unless this process is
// loading it already or tried lately. old is the entry being refreshed.
func (c *Cache) refreshSoon(key string, old Entry) {
	hold := time.Second
	if c.leaser != nil {
		hold = c.lease.ttl
	}
	if !c.refreshes.allow(key, old, c.clock.Now(), hold) {
		return
	}
	if c.refreshRunning.Add(1) > int64(c.refreshMax) {
		c.refreshRunning.Add(-1)
		c.ctr.refreshThrottled.Add(1)
		c.refreshes.reopen(key)
		return
	}
	_, _, f, loadCtx, flights := c.flights.claim(c.bgCtx, []string{key})
	if f == nil {
		// A load of key is in flight, or finishing: let the next hit try
		// again.
		c.refreshRunning.Add(-1)
		c.releaseAll(flights)
		c.refreshes.reopen(key)
		return
	}
	// The flight keeps this, its first waiter, for good: callers that join
	// it and leave must not cancel a refresh nobody started for them. It
	// ends, and Close waits for it, like any load.
	c.ctr.refreshStarted.Add(1)
	c.ctr.flights.Add(1)
	c.flights.run(loadCtx, f, func(ctx context.Context, resolve func(string, result)) {
		defer c.refreshRunning.Add(-1)
		c.refreshLoad(ctx, key, old, resolve)
		c.completed.Add(1)
	}, func() {
		c.ctr.panics.Add(1)
		c.ctr.refreshPanics.Add(1)
	})
}

// refreshLoad reloads key from the source and writes it into every tier,
// replacing old; with leases, only if it wins the key's lease. Callers that
// joined the flight get the new value; when there is none, old, which they
// take for a value read before they came (it was), so they load the key
// themselves.
func (c *Cache) refreshLoad(ctx context.Context, key string, old Entry, resolve func(string, result)) {
	gens := map[string]uint64{key: c.gens.current(key)}
	stale := entryResult(key, old).at(readLongAgo)
	var lease *Lease
	if c.leaser != nil {
		c.ctr.leaseRequests.Add(1)
		asked := time.Now()
		leases, err := c.leaser.Lease(ctx, []string{key}, LeaseRequest{TTL: c.lease.ttl, Now: c.clock.Now(), Refresh: true, Replacing: old.Loaded})
		l, ok := leases[key]
		switch {
		case !ok:
			if err != nil {
				c.tiers[0].ctr.errors.Add(1)
			}
			c.ctr.refreshFailed.Add(1)
			resolve(key, stale)
			return
		case l.State == LeaseHit && l.Entry != nil:
			c.refreshes.landed(key, l.Entry.Loaded) // someone else's refresh
			resolve(key, entryResult(key, *l.Entry).at(asked))
			return
		case l.State != LeaseWon:
			c.ctr.refreshSkipped.Add(1) // another process is refreshing it
			resolve(key, stale)
			return
		}
		c.ctr.leaseWon.Add(1)
		lease = &l
	}
	begun, readAt := c.clock.Now(), time.Now()
	values, err := c.callLoader(ctx, []string{key})
	if err != nil {
		c.ctr.refreshFailed.Add(1)
		if lease != nil {
			c.ctr.leaseReleased.Add(1)
			if err := c.leaser.Release(context.WithoutCancel(ctx), key, *lease); err != nil {
				c.tiers[0].ctr.errors.Add(1)
			}
		}
		resolve(key, stale)
		return
	}
	out := c.freshFound([]string{key}, values, begun)
	out[0].lease, out[0].overwrite, out[0].readAt = lease, true, readAt
	c.backfill(ctx, out, len(c.tiers), gens, resolve)
	c.ctr.refreshDone.Add(1)
	// Holding refreshes off for the rest of the hold would let a value
	// whose TTL is shorter than the lease TTL expire unrefreshed.
	c.refreshes.landed(key, begun)
}

// readLongAgo stamps a result read before anyone could have joined the
// flight that returns it.
var readLongAgo = time.Unix(1, 0)

// refreshGateMax bounds the keys a refreshGate remembers.
const refreshGateMax = 1 << 14

// refreshGate remembers the keys refreshed lately, so that the hits on a
// key another process is refreshing do not each ask for its lease, and so
// that a hit on a value a refresh has already replaced (read just before
// the new one landed) does not refresh it again. The zero value is ready
// to use and safe for concurrent use.
type refreshGate struct {
	mu   sync.Mutex
	keys map[string]gateState
}

type gateState struct {
	// until holds further refreshes off while one may be running.
	until time.Time
	// landed is when the load of the last value a refresh wrote began:
	// an entry loaded before it is one that refresh replaced.
	landed time.Time
}

// allow reports whether key, found holding old, may be refreshed at now,
// and if so holds further refreshes of it off for hold.
func (g *refreshGate) allow(key string, old Entry, now time.Time, hold time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	st, ok := g.keys[key]
	if ok && (now.Before(st.until) || old.Loaded.Before(st.landed)) {
		return false
	}
	if g.keys == nil {
		g.keys = make(map[string]gateState)
	}
	if !ok && len(g.keys) >= refreshGateMax {
		for k, st := range g.keys {
			if !now.Before(st.until) {
				delete(g.keys, k)
			}
		}
		if len(g.keys) >= refreshGateMax {
			return false // too many refreshes at once: let the entries expire
		}
	}
	st.until = now.Add(hold)
	g.keys[key] = st
	return true
}

// reopen lets key be refreshed again at once.
func (g *refreshGate) reopen(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if st, ok := g.keys[key]; ok {
		st.until = time.Time{}
		g.keys[key] = st
	}
}

// landed reopens key, whose value a refresh replaced with one whose load
// began at loaded: the new value's own expiry decides when it is refreshed
// next, and hits on values loaded before it refresh nothing.
func (g *refreshGate) landed(key string, loaded time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.keys == nil {
		g.keys = make(map[string]gateState)
	}
	if st, ok := g.keys[key]; ok || len(g.keys) < refreshGateMax {
		st.until, st.landed = time.Time{}, later(st.landed, loaded)
		g.keys[key] = st
	}
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
