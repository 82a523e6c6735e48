package tier

import (
	"context"
	"time"
)

// arbiter is the chain's policy for keys that missed the tiers a flight
// asks first, and for what an invalidation leaves behind. New chooses one:
// plainArbiter, where each process loads what it misses and an
// invalidation removes the key, or leaseArbiter (WithLeases), where one
// process among all those sharing the leasing tier loads a key and an
// invalidation leaves a marker there. Get, GetMulti, Set and Delete are
// the same pipeline either way.
type arbiter interface {
	// settle resolves keys that missed every tier a flight asks first
	// (c.split of them).
	settle(r *loadRun, keys []string)
	// mark is the marker an invalidation at now leaves; zero when none.
	mark(now time.Time) Marker
	// write stores what an invalidation leaves in tier i: e, or no value
	// when e is nil (Delete), with marker m.
	write(ctx context.Context, i int, key string, e *Entry, m Marker) error
}

// plainArbiter loads in-process: the flight asked every tier, so what is
// missing comes from the source.
type plainArbiter struct{ c *Cache }

func (a plainArbiter) settle(r *loadRun, keys []string) { r.fromSource(keys) }

func (plainArbiter) mark(time.Time) Marker { return Marker{} }

func (a plainArbiter) write(ctx context.Context, i int, key string, e *Entry, _ Marker) error {
	if e == nil {
		return a.c.tiers[i].tier.Delete(ctx, key)
	}
	return a.c.tiers[i].tier.Set(ctx, key, *e)
}

// leaseArbiter loads through leases taken in the leasing tier
// (leaseload.go), and leaves invalidation markers there (lease.go).
type leaseArbiter struct{ c *Cache }

func (a leaseArbiter) settle(r *loadRun, keys []string) { r.loadLeased(keys) }

func (a leaseArbiter) mark(now time.Time) Marker { return a.c.marker(now) }

func (a leaseArbiter) write(ctx context.Context, i int, key string, e *Entry, m Marker) error {
	c := a.c
	if e != nil {
		// The value the marker announces: newer than the marker.
		e.Loaded = c.setLoaded(m)
	}
	if i == c.leaseAt {
		// A marker, with the value if any, instead of a plain write: it
		// refuses the fills of loads in flight and outdates older durable
		// copies in other processes.
		return c.invalidateTop(ctx, key, m, e)
	}
	return plainArbiter{c}.write(ctx, i, key, e, m)
}
