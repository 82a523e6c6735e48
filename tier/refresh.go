package tier

import (
	"context"
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

// refreshing applies early refresh and stale-while-revalidate to what a
// flight found in the refreshing tier: hits due for a refresh are noted in
// r.due, and expired values within the grace window are answered and
// noted too. It returns the misses left.
func (r *loadRun) refreshing(hits []found, misses []string, readAt time.Time) []string {
	c := r.c
	now := c.clock.Now()
	for _, h := range hits {
		if c.refreshEarly(h.entry, now) {
			c.ctr.refreshEarly.Add(1)
			r.refreshLater(h.key, h.entry)
		}
	}
	left := misses[:0]
	for _, k := range misses {
		if e, ok := r.stale[k]; ok && c.servesStale(e, now) {
			c.ctr.refreshStale.Add(1)
			r.refreshLater(k, e)
			r.resolve(k, entryResult(k, e).at(readAt))
			continue
		}
		left = append(left, k)
	}
	return left
}

func (r *loadRun) refreshLater(key string, e Entry) {
	if r.due == nil {
		r.due = make(map[string]Entry)
	}
	r.due[key] = e
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

// refreshSoon reloads the keys of due in the background, in one load,
// but for those this process refreshed lately. due holds the entries being
// refreshed. The refresh is no flight: callers keep being answered with
// the current values meanwhile.
func (c *Cache) refreshSoon(due map[string]Entry) {
	hold := time.Second
	if c.leaser != nil {
		hold = c.lease.ttl
	}
	now := c.clock.Now()
	for k, old := range due {
		if !c.refreshes.allow(k, old, now, hold) {
			delete(due, k)
		}
	}
	if len(due) == 0 {
		return
	}
	if c.refreshRunning.Add(1) > int64(c.refreshMax) || !c.enterBackground() {
		c.refreshRunning.Add(-1)
		c.ctr.refreshThrottled.Add(int64(len(due)))
		for k := range due {
			c.refreshes.reopen(k)
		}
		return
	}
	c.ctr.refreshStarted.Add(int64(len(due)))
	go func() {
		defer c.bg.Done()
		defer c.refreshRunning.Add(-1)
		defer func() {
			if r := recover(); r != nil {
				c.ctr.panics.Add(1)
				c.ctr.refreshPanics.Add(1)
			}
		}()
		c.refreshLoad(c.bgCtx, due)
	}()
}

// refreshLoad reloads the keys of due from the source and writes them into
// every tier, replacing the entries in due; with leases, only the keys
// whose lease it wins.
func (c *Cache) refreshLoad(ctx context.Context, due map[string]Entry) {
	gens := make(map[string]uint64, len(due))
	for k := range due {
		gens[k] = c.gens.current(k)
	}
	var leases map[string]Lease
	keys := mapKeys(due)
	if c.leaser != nil {
		leases = c.refreshLeases(ctx, due)
		keys = mapKeys(leases)
	}
	for start := 0; start < len(keys); start += c.loadBatch {
		chunk := keys[start:min(start+c.loadBatch, len(keys))]
		begun := c.clock.Now()
		values, err := c.callLoader(ctx, chunk)
		if err != nil {
			c.ctr.refreshFailed.Add(int64(len(chunk)))
			for _, k := range chunk {
				if l, ok := leases[k]; ok {
					c.ctr.leaseReleased.Add(1)
					if err := c.leaser.Release(context.WithoutCancel(ctx), k, l); err != nil {
						c.tiers[c.leaseAt].ctr.errors.Add(1)
					}
				}
			}
			continue
		}
		out := c.freshFound(chunk, values, begun)
		for i := range out {
			out[i].overwrite = true
			if l, ok := leases[out[i].key]; ok {
				out[i].lease = &l
			}
		}
		c.fills.hold()
		c.fills.do(func() { c.writeBack(context.WithoutCancel(ctx), out, len(c.tiers), gens) })
		c.ctr.refreshDone.Add(int64(len(chunk)))
		// Holding refreshes off for the rest of the hold would let a value
		// whose TTL is shorter than the lease TTL expire unrefreshed.
		for _, k := range chunk {
			c.refreshes.landed(k, begun)
			c.flights.forget(k) // no caller joins a flight older than the new value
		}
	}
}

// refreshLeases asks for the leases of the keys of due over their current
// values, one request per load time the entries share (entries loaded
// together refresh together), and returns those won.
func (c *Cache) refreshLeases(ctx context.Context, due map[string]Entry) map[string]Lease {
	byLoad := make(map[time.Time][]string)
	for k, e := range due {
		byLoad[e.Loaded] = append(byLoad[e.Loaded], k)
	}
	won := make(map[string]Lease)
	for loaded, keys := range byLoad {
		c.ctr.leaseRequests.Add(int64(len(keys)))
		leases, err := c.leaser.Lease(ctx, keys, LeaseRequest{TTL: c.lease.ttl, Now: c.clock.Now(), Refresh: true, Replacing: loaded})
		if err != nil {
			c.tiers[c.leaseAt].ctr.errors.Add(1)
		}
		for _, k := range keys {
			l, ok := leases[k]
			switch {
			case !ok:
				c.ctr.refreshFailed.Add(1)
			case l.State == LeaseHit && l.Entry != nil:
				c.refreshes.landed(k, l.Entry.Loaded) // someone else's refresh
			case l.State != LeaseWon:
				c.ctr.refreshSkipped.Add(1) // another process is refreshing it
			default:
				c.ctr.leaseWon.Add(1)
				won[k] = l
			}
		}
	}
	return won
}

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
