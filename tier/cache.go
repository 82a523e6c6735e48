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

	// arb settles what misses the first split tiers (arbiter.go): plain,
	// or through leases. With leases (lease.go), leaser is the leasing
	// tier, tiers[leaseAt]; leaseAt is -1 without. refreshAt is the tier
	// whose hits early refresh and stale-while-revalidate look at.
	arb       arbiter
	split     int
	refreshAt int
	leaser    Leaser
	leaseAt   int
	lease     leaseConfig
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
	// writes are the write-backs in progress, which an invalidation
	// waits for (writebacks.go).
	writes *writeBacks
	fills  *filler

	// Protection of the source (source.go): loadSlots bounds the loads
	// running at once.
	loadSlots   chan struct{}
	loadTimeout time.Duration
	breaker     breaker

	ctr counters
	obs Observer

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
	obs   Observer
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
		obs:         cfg.observer,
		rand:        rand.Float64,
		sleep:       sleepCtx,
		flights:     newFlightGroup(),
		gens:        newGenerations(),
		writes:      newWriteBacks(),
		fills:       newFiller(cfg.fillMax),
		loadSlots:   make(chan struct{}, cfg.loadMax),
		loadTimeout: cfg.loadTimeout,
		breaker:     breaker{limit: cfg.breakerFailures, coolDown: cfg.breakerCoolDown},
		leaseAt:     -1,
	}
	for _, tc := range cfg.tiers {
		ct := &chainTier{tier: tc.tier, ttl: tc.ttl, name: tc.name, obs: cfg.observer}
		ct.adder, _ = tc.tier.(Adder)
		c.tiers = append(c.tiers, ct)
	}
	c.arb, c.split = plainArbiter{c}, len(c.tiers)
	if cfg.leases != nil {
		if err := c.setupLeases(&cfg); err != nil {
			return nil, err
		}
		c.arb, c.split, c.refreshAt = leaseArbiter{c}, c.leaseAt+1, c.leaseAt
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
	running := c.invalidate(key)
	defer c.invalidated(ctx, key, running)
	now := c.clock.Now()
	m, jitter := c.arb.mark(now), c.jitterFactor()
	var errs []error
	// Bottom up, like a backfill: a value visible at the top is always
	// backed by the durable tiers.
	for i := len(c.tiers) - 1; i >= 0; i-- {
		t := c.tiers[i]
		e := Entry{Value: value, Expires: expiry(now, scaled(t.ttl, jitter))}
		err := c.arb.write(ctx, i, key, &e, m)
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
	running := c.invalidate(key)
	defer c.invalidated(ctx, key, running)
	m := c.arb.mark(c.clock.Now())
	var errs []error
	for i, t := range c.tiers {
		if err := c.arb.write(ctx, i, key, nil, m); err != nil {
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
func (c *Cache) invalidate(key string) []*writeBack {
	c.ctr.invalidations.Add(1)
	c.gens.begin(key)
	c.flights.forget(key)
	return c.writes.running(key)
}

// writeBackWait bounds how long an invalidation waits for the write-backs
// of its key that began before it.
const writeBackWait = time.Second

// invalidated ends the invalidation of key: loads that began while it was
// under way may have read a tier it had not reached yet, so their
// backfills are voided too, and no caller arriving from now on joins them.
//
// It first waits for the write-backs of key that were running when the
// invalidation began (see writeBacks): one of them may have written a
// tier after the invalidation cleared it, and undoes that only when it
// ends. The wait lasts at most writeBackWait, and no longer than ctx: a
// write-back stuck on a hung tier does not hold the invalidation up for
// longer than that, and then its undo comes later.
func (c *Cache) invalidated(ctx context.Context, key string, running []*writeBack) {
	if len(running) > 0 {
		timer := time.NewTimer(writeBackWait)
	wait:
		for _, wb := range running {
			select {
			case <-wb.done:
			case <-timer.C:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		timer.Stop()
	}
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
