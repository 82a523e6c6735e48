package tier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Cache is a read-through chain of tiers in front of a Loader. It is safe
// for concurrent use. Create it with New and Close it when done.
type Cache struct {
	tiers       []*chainTier
	loader      Loader
	negativeTTL time.Duration
	loadBatch   int
	staleIfErr  time.Duration
	maxKeyLen   int
	clock       Clock
	backfillPar int

	// Leases (lease.go): leaser is the top tier when WithLeases is on.
	leaser Leaser
	lease  leaseConfig
	// Early refresh and stale-while-revalidate (refresh.go), TTL jitter
	// (jitter.go). recordLoads stamps fresh entries with Loaded and Delta.
	beta        float64
	grace       time.Duration
	jitter      float64
	recordLoads bool
	refreshes   refreshGate
	refreshMax  int
	// refreshRunning counts background refreshes started and not ended.
	refreshRunning atomic.Int64
	// rand returns a number in [0, 1); sleep pauses a lease waiter. Tests
	// replace both.
	rand  func() float64
	sleep func(ctx context.Context, d time.Duration) error

	flights *flightGroup
	gens    *generations
	// completed counts finished flights. A caller notes it before its
	// top-tier lookup; if it has not moved by the time the caller starts a
	// flight, no flight could have backfilled the top tier in between, so
	// the flight need not ask the top tier again.
	completed atomic.Uint64

	ctr counters

	// lastRun is the warmup running now, or the last one.
	lastRun atomic.Pointer[warmRun]

	closeOnce sync.Once
	closed    atomic.Bool
	bgMu      sync.Mutex
	bgClosed  bool
	bg        sync.WaitGroup // warmups and other background work
	// bgCtx is cancelled by Close; it stops the background work.
	bgCtx    context.Context
	bgCancel context.CancelFunc
}

type chainTier struct {
	tier  Tier
	ttl   time.Duration
	name  string
	adder Adder // nil when the tier cannot add
	ctr   tierCounters
}

// New builds a cache whose source of truth is src, with the tiers given by
// WithTier options in order, top first. A cache without tiers still
// collapses concurrent loads of the same key into one.
func New(src Loader, opts ...Option) (*Cache, error) {
	if src == nil {
		return nil, errors.New("tier: New: nil loader")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	c := &Cache{
		loader:      src,
		negativeTTL: cfg.negativeTTL,
		loadBatch:   cfg.loadBatch,
		staleIfErr:  cfg.staleIfErr,
		maxKeyLen:   cfg.maxKeyLen,
		clock:       cfg.clock,
		backfillPar: cfg.backfillPar,
		beta:        cfg.beta,
		grace:       cfg.grace,
		jitter:      cfg.jitter,
		refreshMax:  cfg.refreshMax,
		rand:        rand.Float64,
		sleep:       sleepCtx,
		flights:     newFlightGroup(),
		gens:        newGenerations(),
	}
	for _, tc := range cfg.tiers {
		ct := &chainTier{tier: tc.tier, ttl: tc.ttl, name: tc.name}
		ct.adder, _ = tc.tier.(Adder)
		c.tiers = append(c.tiers, ct)
	}
	if cfg.leases != nil {
		if err := c.setupLeases(&cfg); err != nil {
			return nil, err
		}
	}
	if c.grace > 0 && c.leaser == nil {
		return nil, errors.New("tier: WithStaleWhileRevalidate needs WithLeases: the top tier keeps expired values only when they are written through leases")
	}
	c.recordLoads = c.leaser != nil || c.beta > 0 || c.grace > 0
	c.bgCtx, c.bgCancel = context.WithCancel(context.Background())
	if cfg.autoWarmup != nil {
		events, err := c.restartEvents()
		if err != nil {
			c.bgCancel()
			return nil, err
		}
		c.bg.Add(1)
		go c.watchRestarts(events, *cfg.autoWarmup)
	}
	return c, nil
}

// enterBackground registers background work that Close must wait for, or
// reports false once Close has begun.
func (c *Cache) enterBackground() bool {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.bgClosed {
		return false
	}
	c.bg.Add(1)
	return true
}

func (c *Cache) checkKey(key string) error {
	if len(key) > c.maxKeyLen {
		return fmt.Errorf("%w: %d bytes, longer than the maximum of %d", ErrInvalidKey, len(key), c.maxKeyLen)
	}
	return nil
}

// Get returns the value of key from the first tier that holds it, or from
// the loader, filling the tiers above on the way back. It returns an error
// wrapping ErrNotFound when the source has no such key.
//
// Concurrent Gets of a key that must be loaded share one load. Each caller
// waits only as long as its own ctx allows; the load goes on for the others.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, error) {
	if err := c.checkKey(key); err != nil {
		return nil, fmt.Errorf("tier: get: %w", err)
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	c.ctr.gets.Add(1)
	completed := c.completed.Load()
	from := 0
	if len(c.tiers) > 0 {
		if c.beta > 0 || c.grace > 0 {
			if v, err, ok := c.getTopRefreshing(ctx, key); ok {
				return v, err
			}
		} else if v, err, ok := c.getTop(ctx, key); ok {
			return v, err
		}
		from = 1
	}

	claimed := time.Now()
	for {
		res, cl := c.loadShared(ctx, key, from, completed)
		if !res.late(claimed) || ctx.Err() != nil {
			return res.value, res.err
		}
		// The load this call joined had read the key before the call
		// began; an invalidation in another process may lie in between.
		c.ctr.leaseRejoins.Add(1)
		c.flights.forgetCall(key, cl)
		from = 0
	}
}

// loadShared loads key in a flight, or joins the flight loading it, and
// waits for the result as long as ctx allows.
func (c *Cache) loadShared(ctx context.Context, key string, from int, completed uint64) (result, *call) {
	own, joined, f, loadCtx, flights := c.flights.claim(ctx, []string{key})
	defer c.releaseAll(flights)
	cl := joined[key]
	if f != nil {
		if c.completed.Load() != completed {
			from = 0 // another flight may have filled the top tier meanwhile
		}
		c.startLoad(loadCtx, f, own, from)
		cl = f.calls[key]
	} else {
		c.ctr.sharedWaits.Add(1)
	}
	return wait(ctx, cl), cl
}

// getTop asks the top tier. ok is false on a miss of any kind.
func (c *Cache) getTop(ctx context.Context, key string) (v []byte, err error, ok bool) {
	t := c.tiers[0]
	e, err := t.tier.Get(ctx, key)
	if err != nil {
		t.ctr.misses.Add(1)
		if !errors.Is(err, ErrMiss) {
			t.ctr.errors.Add(1)
		}
		return nil, nil, false
	}
	if e.Expired(c.clock.Now()) {
		t.ctr.misses.Add(1)
		return nil, nil, false
	}
	t.ctr.hits.Add(1)
	if e.Negative {
		return nil, fmt.Errorf("tier: get %q: %w", key, ErrNotFound), true
	}
	return e.Value, nil, true
}

func (c *Cache) startLoad(ctx context.Context, f *flight, keys []string, from int) {
	c.ctr.flights.Add(1)
	c.flights.run(ctx, f, func(ctx context.Context, resolve func(string, result)) {
		c.load(ctx, keys, from, resolve)
		c.completed.Add(1)
	}, func() { c.ctr.panics.Add(1) })
}

func (c *Cache) releaseAll(flights []*flight) {
	for _, f := range flights {
		c.flights.release(f)
	}
}

// Set stores value for key in every tier, for each tier's TTL. Call it after
// the source of truth has been updated. A load of key that was in flight
// when Set began will not overwrite it. A tier too small for the value
// drops its old copy instead, which is not an error. The returned error
// names every tier that failed; the others hold the new value.
//
// A tier that writes behind the caller (the bbolt tier) holds the value
// once it is queued, and Set waits, for as long as ctx allows, for room
// in a full queue: nil means every tier took the value. When ctx ends
// first, that tier's error (wrapping boltdb.ErrQueueFull and ctx's error)
// is among those returned, and that tier holds no copy of the new value;
// it has queued a delete of its older copy instead, unless its error says
// the older copy may remain.
func (c *Cache) Set(ctx context.Context, key string, value []byte) error {
	if err := c.checkKey(key); err != nil {
		return fmt.Errorf("tier: set: %w", err)
	}
	if c.closed.Load() {
		return ErrClosed
	}
	c.invalidate(key)
	defer c.invalidated(key)
	now := c.clock.Now()
	var (
		errs   []error
		m      Marker
		jitter = c.jitterFactor()
	)
	if c.leaser != nil {
		m = c.marker(now)
	}
	// Bottom up, like a backfill: a value visible at the top is always
	// backed by the durable tiers.
	for i := len(c.tiers) - 1; i >= 0; i-- {
		t := c.tiers[i]
		e := Entry{Value: value, Expires: expiry(now, scaled(t.ttl, jitter))}
		var err error
		switch {
		case c.leaser == nil:
			err = t.tier.Set(ctx, key, e)
		case i == 0:
			// The value and the marker that outdates older durable copies
			// in other processes, in one write.
			e.Loaded = c.setLoaded(m)
			err = c.invalidateTop(ctx, key, m, &e)
		default:
			e.Loaded = c.setLoaded(m)
			err = t.tier.Set(ctx, key, e)
		}
		if errors.Is(err, ErrTooLarge) {
			continue // the tier dropped its copy; the tiers below hold the value
		}
		if err != nil {
			t.ctr.errors.Add(1)
			errs = append(errs, fmt.Errorf("tier: set %q in %s: %w", key, t.name, err))
		}
	}
	return errors.Join(errs...)
}

// Delete removes key from every tier. A load of key that was in flight when
// Delete began will not put the old value back. The returned error names
// every tier that could not be reached; the others no longer hold the key.
func (c *Cache) Delete(ctx context.Context, key string) error {
	if err := c.checkKey(key); err != nil {
		return fmt.Errorf("tier: delete: %w", err)
	}
	if c.closed.Load() {
		return ErrClosed
	}
	c.invalidate(key)
	defer c.invalidated(key)
	now := c.clock.Now()
	var errs []error
	for i, t := range c.tiers {
		var err error
		if i == 0 && c.leaser != nil {
			// A marker, not a delete: it refuses the fills of loads in
			// flight and outdates older durable copies in other processes.
			err = c.invalidateTop(ctx, key, c.marker(now), nil)
		} else {
			err = t.tier.Delete(ctx, key)
		}
		if err != nil {
			t.ctr.errors.Add(1)
			errs = append(errs, fmt.Errorf("tier: delete %q in %s: %w", key, t.name, err))
		}
	}
	return errors.Join(errs...)
}

// invalidate begins an invalidation of key, which the caller ends with
// invalidated once every tier has it: it voids every load of key in
// flight (their backfills will not land) and holds off the backfills of
// loads that begin meanwhile, and no caller arriving from now on joins a
// load that began before.
func (c *Cache) invalidate(key string) {
	c.ctr.invalidations.Add(1)
	c.gens.begin(key)
	c.flights.forget(key)
}

// invalidated ends the invalidation of key: loads that began while it was
// under way may have read a tier it had not reached yet, so their
// backfills are voided too, and no caller arriving from now on joins them.
func (c *Cache) invalidated(key string) {
	c.gens.end(key)
	c.flights.forget(key)
}

// Close waits for loads in progress, cancels warmups in progress (and the
// watch for restarts of WithAutoWarmup) and waits for them to stop, then
// closes every tier and the loader when they have a Close method (a bbolt
// tier flushes its write queue then; the SQL loader releases its prepared
// statements but leaves the *sql.DB, which the caller owns, open).
func (c *Cache) Close() error {
	var errs []error
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.flights.close()
		c.bgMu.Lock()
		c.bgClosed = true
		c.bgMu.Unlock()
		c.bgCancel()
		c.bg.Wait()
		for _, t := range c.tiers {
			if cl, ok := t.tier.(io.Closer); ok {
				if err := cl.Close(); err != nil {
					errs = append(errs, fmt.Errorf("tier: close %s: %w", t.name, err))
				}
			}
		}
		if cl, ok := c.loader.(io.Closer); ok {
			if err := cl.Close(); err != nil {
				errs = append(errs, fmt.Errorf("tier: close loader: %w", err))
			}
		}
	})
	return errors.Join(errs...)
}

// expiry is the absolute expiry of a value stored now for ttl; 0 is never.
func expiry(now time.Time, ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return now.Add(ttl)
}

// capExpiry keeps the expiry an entry already has, but no later than the
// tier's own TTL allows: a backfill never extends a value's life.
func capExpiry(e time.Time, now time.Time, ttl time.Duration) time.Time {
	limit := expiry(now, ttl)
	switch {
	case e.IsZero():
		return limit
	case limit.IsZero() || e.Before(limit):
		return e
	default:
		return limit
	}
}
