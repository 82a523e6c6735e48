package tier

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Leases.
//
// Singleflight keeps one process from loading a key twice; leases keep
// many processes sharing a tier (memcached) from doing it. That leasing
// tier is the first in the chain that implements Leaser; tiers above it (an
// in-process memory tier) are asked first and filled plainly, and are not
// shared, so no other process's load or invalidation concerns them beyond
// their short TTL. When a key misses every tier down to the leasing tier,
// the flight asks the leasing tier for a lease before it looks any further (Leaser.Lease, one round trip per node for a whole
// batch). Exactly one caller across all processes wins it; it loads the
// key (from its durable tier, or the source) and fills the leasing tier
// with a write that only lands if the lease is still current (Leaser.Fill). The
// others wait for that fill, polling the leasing tier, until the value
// appears, the lease expires (a holder that died: one of them wins the
// next one), their context ends, or the wait limit passes and they load
// the key themselves.
//
// An invalidation (Set, Delete) voids every lease granted before it, so a
// load that read the old value cannot write it back: the late fill is
// refused. It also leaves a marker in the leasing tier, under the key, with
// the time of the invalidation, kept as long as a durable copy written
// before it may live (WithMarkerTTL). Every process has a durable tier of
// its own that no other process's Delete can reach, so a copy found there
// is served only when it was loaded after the marker the lease reply
// carries (Entry.Loaded; WithClockSkew widens the margin). Because the
// marker occupies the key, a write that only adds (warmup, or a backfill
// while leases cannot be asked for) cannot put an old value back either.
// docs/consistency.md states what this guarantees and what breaks it.

// LeaseState says who is to load a key, as a Leaser answers it.
type LeaseState uint8

const (
	// LeaseHit means the tier holds a fresh entry for the key after all
	// (someone filled it since the caller missed); it is in Lease.Entry.
	LeaseHit LeaseState = iota + 1
	// LeaseWon means the caller holds the lease: it loads the key, then
	// calls Fill, or Release if it cannot.
	LeaseWon
	// LeaseHeld means another caller, in this process or another, holds
	// the lease; its Fill will bring the value.
	LeaseHeld
)

func (s LeaseState) String() string {
	switch s {
	case LeaseHit:
		return "hit"
	case LeaseWon:
		return "won"
	case LeaseHeld:
		return "held"
	default:
		return fmt.Sprintf("LeaseState(%d)", uint8(s))
	}
}

// Marker records that a key was invalidated at At. A durable copy of the
// key loaded before At is stale. The tier keeps the marker until Until;
// the zero Until, with At set, means for as long as it can. The zero
// Marker means the tier remembers no invalidation of the key.
type Marker struct {
	At    time.Time
	Until time.Time
}

// Lease is a Leaser's answer for one key.
type Lease struct {
	State LeaseState
	// Entry is the fresh entry for LeaseHit. For LeaseWon and LeaseHeld it
	// is the entry the tier still holds for the key, if any: an expired
	// one, which stale-while-revalidate may serve while the key is
	// reloaded, or the current one for a Refresh request.
	Entry *Entry
	// Marker is the last invalidation the tier remembers for the key.
	Marker Marker
	// Token identifies the lease to the tier (for memcached, the CAS
	// value of the item that holds it). It means nothing to the chain.
	Token uint64
}

// LeaseRequest says what Leaser.Lease is asked.
type LeaseRequest struct {
	// TTL is how long a lease lasts if its holder neither fills nor
	// releases it.
	TTL time.Duration
	// Now is the chain's time: an entry expired at Now is not a hit.
	Now time.Time
	// Refresh asks for the lease even over a fresh entry (early refresh,
	// stale-while-revalidate). The answer is then LeaseWon or LeaseHeld,
	// or LeaseHit for a fresh entry loaded after Replacing.
	Refresh bool
	// Replacing, with Refresh, is when the load of the value being
	// refreshed began (its Entry.Loaded). A fresh entry loaded after it is
	// someone else's refresh, which landed meanwhile: a hit, not a value to
	// load again. Zero takes the lease over any entry.
	Replacing time.Time
}

// LeaseWrite is what the chain stores through a Leaser.
type LeaseWrite struct {
	// Entry is the value to store; nil stores none (an invalidation by
	// Delete).
	Entry *Entry
	// Marker is the invalidation the key carries from now on: the one the
	// lease reported, or a new one for Invalidate. Zero when none.
	Marker Marker
	// Grace is how long past its expiry the tier should keep the entry,
	// for stale-while-revalidate.
	Grace time.Duration
}

// Leaser is a top tier that can arbitrate loads among processes (see
// WithLeases). The four methods are one protocol, so they come together.
// Implementations must be safe for concurrent use.
type Leaser interface {
	// Lease asks, for each key, who is to load it. Keys the tier could
	// not answer for (a server down) are absent from the map, and the
	// error says why; the chain then loads them without a lease.
	Lease(ctx context.Context, keys []string, req LeaseRequest) (map[string]Lease, error)
	// Fill stores w for key if l is still the key's lease, and returns an
	// error wrapping ErrLeaseLost if it is not (an invalidation, or
	// another caller taking over an expired lease, came first).
	Fill(ctx context.Context, key string, l Lease, w LeaseWrite) error
	// Release gives up a lease won but not filled, so that the callers
	// waiting for it need not wait for it to expire.
	Release(ctx context.Context, key string, l Lease) error
	// Invalidate replaces whatever the tier holds for key with w: its
	// marker, and its entry if any. It voids every lease of key granted
	// before it, and it makes adds of key fail for as long as the marker
	// is kept.
	Invalidate(ctx context.Context, key string, w LeaseWrite) error
}

// Defaults of WithLeases.
const (
	DefaultLeaseTTL  = 3 * time.Second
	DefaultLeaseWait = 5 * time.Second
	DefaultClockSkew = time.Second
)

// Bounds on the pause between two polls of a lease another caller holds:
// it doubles from the first to the last. A waiter learns of a fill at
// most leasePollMax late, for one round trip to the top tier per poll and
// batch of keys.
const (
	leasePollFirst = time.Millisecond
	leasePollMax   = 4 * time.Millisecond
)

// LeaseOption configures WithLeases.
type LeaseOption func(*leaseConfig) error

type leaseConfig struct {
	ttl       time.Duration
	wait      time.Duration
	skew      time.Duration
	markerTTL time.Duration
	markerSet bool // markerTTL given by WithMarkerTTL
}

// WithLeases makes the chain share loads with other processes through the
// first tier that implements Leaser (the memcached tier does), wherever it
// sits in the chain: of all
// the callers in all the processes that miss a key at once, one loads it
// and the others wait for its value, and an invalidation voids the loads
// in flight everywhere. See the Leases section of the package
// documentation and docs/consistency.md.
//
// A miss then costs one more round trip to the leasing tier (the lease),
// and a hit costs nothing more. Set and Delete leave an invalidation marker
// in the leasing tier instead of removing the key; the tiers above it are
// cleared as usual. When the leasing tier cannot be reached, keys are loaded with in-process singleflight only, as without
// leases.
func WithLeases(opts ...LeaseOption) Option {
	return func(c *config) error {
		lc := leaseConfig{ttl: DefaultLeaseTTL, wait: DefaultLeaseWait, skew: DefaultClockSkew}
		for _, o := range opts {
			if o == nil {
				continue
			}
			if err := o(&lc); err != nil {
				return fmt.Errorf("tier: WithLeases: %w", err)
			}
		}
		c.leases = &lc
		return nil
	}
}

// WithLeaseTTL sets how long a lease lasts when its holder neither fills
// nor releases it: a process that dies holding a lease delays the key's
// load by at most this much. It must exceed the time a load takes, or
// slow loads lose their lease and their fill is refused. memcached counts
// it in whole seconds, rounded up. Default DefaultLeaseTTL.
func WithLeaseTTL(d time.Duration) LeaseOption {
	return func(c *leaseConfig) error {
		if d < time.Second {
			return fmt.Errorf("lease TTL %v, want at least 1s", d)
		}
		c.ttl = d
		return nil
	}
}

// WithLeaseWait sets how long a caller waits for the holder of a lease to
// fill the key before it loads the key itself (counted in
// Stats().Leases.Timeouts). A value over the lease TTL lets waiters take
// over the lease of a holder that died instead of all loading the key.
// Default DefaultLeaseWait.
func WithLeaseWait(d time.Duration) LeaseOption {
	return func(c *leaseConfig) error {
		if d <= 0 {
			return fmt.Errorf("lease wait %v, want a positive duration", d)
		}
		c.wait = d
		return nil
	}
}

// WithClockSkew sets how far apart the clocks of the processes sharing
// the top tier may be. A durable copy is served only if it was loaded
// more than this after the key's last invalidation, so a process whose
// clock is ahead by up to d cannot pass off a value read before the
// invalidation as newer. Default DefaultClockSkew; 0 trusts the clocks
// exactly.
func WithClockSkew(d time.Duration) LeaseOption {
	return func(c *leaseConfig) error {
		if d < 0 {
			return fmt.Errorf("clock skew %v, want 0 or more", d)
		}
		c.skew = d
		return nil
	}
}

// WithMarkerTTL sets how long the top tier keeps the marker a Set or
// Delete leaves, which must be at least as long as any durable copy
// written before it may live, in any process. The default is the longest
// TTL of the tiers below the top, stretched by WithTTLJitter, or for ever
// (until evicted) when one of them never expires. 0 means for ever.
func WithMarkerTTL(d time.Duration) LeaseOption {
	return func(c *leaseConfig) error {
		if d < 0 {
			return fmt.Errorf("marker TTL %v, want 0 (for ever) or more", d)
		}
		c.markerTTL, c.markerSet = d, true
		return nil
	}
}

// setupLeases finds the leasing tier, the first that implements Leaser
// (tiers above it, such as an in-process memory tier, are asked first and
// filled plainly), and settles the marker TTL.
func (c *Cache) setupLeases(cfg *config) error {
	lc := cfg.leases
	if len(c.tiers) == 0 {
		return errors.New("tier: WithLeases: needs a tier that can lease")
	}
	at := -1
	var l Leaser
	for i, t := range c.tiers {
		if tl, ok := t.tier.(Leaser); ok {
			at, l = i, tl
			break
		}
	}
	if at < 0 {
		return errors.New("tier: WithLeases: no tier can lease")
	}
	if !lc.markerSet {
		lc.markerTTL = lc.ttl // no durable tier: a marker need only outlive the leases
		for _, t := range c.tiers[at+1:] {
			if t.ttl == 0 {
				lc.markerTTL = 0
				break
			}
			lc.markerTTL = max(lc.markerTTL, c.stretch(t.ttl))
		}
	}
	c.leaser, c.lease, c.leaseAt = l, *lc, at
	return nil
}

// marker is the marker an invalidation at now leaves.
func (c *Cache) marker(now time.Time) Marker {
	m := Marker{At: now}
	if c.lease.markerTTL > 0 {
		m.Until = now.Add(c.lease.markerTTL)
	}
	return m
}

// fresherThan reports whether a copy e found in a durable tier may be
// served although the key was invalidated as m says: it was loaded more
// than the clock skew after the invalidation.
func (c *Cache) fresherThan(e Entry, m Marker) bool {
	return m.At.IsZero() || e.Loaded.After(m.At.Add(c.lease.skew))
}

// setLoaded stamps an entry a Set writes: newer than the marker the Set
// leaves by more than the clock skew, since it is the value the marker
// announces.
func (c *Cache) setLoaded(m Marker) time.Time {
	return m.At.Add(c.lease.skew + time.Microsecond)
}

// invalidateTop records an invalidation of key in the leasing tier, with the
// new value when e is not nil.
func (c *Cache) invalidateTop(ctx context.Context, key string, m Marker, e *Entry) error {
	c.ctr.leaseMarkers.Add(1)
	return c.leaser.Invalidate(ctx, key, LeaseWrite{Entry: e, Marker: m, Grace: c.grace})
}
