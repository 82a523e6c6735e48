package tier

import (
	"context"
	"time"
)

// loadLeased resolves keys that missed the tiers down to the leasing
// tier: it asks the leasing tier for their leases in one call, loads the
// keys it wins, and waits for the others. Keys whose lease could not be
// asked for are loaded as without leases.
func (r *loadRun) loadLeased(keys []string) {
	c := r.c
	r.askedAt = make(map[string]time.Time, len(keys))
	won, held, failed := r.ask(keys, false)
	if len(failed) > 0 {
		c.ctr.leaseFallbacks.Add(int64(len(failed)))
		r.unleased(failed)
	}
	r.settle(won, held)
}

// unleased looks keys up in the tiers below the leasing tier, then loads
// what is still missing from the source.
func (r *loadRun) unleased(keys []string) {
	for i := r.c.leaseAt + 1; i < len(r.c.tiers) && len(keys) > 0; i++ {
		keys = r.lookup(i, keys)
	}
	r.fromSource(keys)
}

// ask asks the top tier for the leases of keys, resolves the keys it
// answers with a value, and returns the others by state. waiting says the
// keys were held by someone else at the last ask.
func (r *loadRun) ask(keys []string, waiting bool) (won, held map[string]Lease, failed []string) {
	c := r.c
	now := c.clock.Now()
	asked := time.Now()
	c.ctr.leaseRequests.Add(int64(len(keys)))
	leases, err := c.leaser.Lease(r.ctx, keys, LeaseRequest{TTL: c.lease.ttl, Now: now})
	if err != nil {
		c.tiers[c.leaseAt].ctr.errors.Add(1)
	}
	won, held = make(map[string]Lease), make(map[string]Lease)
	for _, k := range keys {
		l, ok := leases[k]
		switch {
		case !ok, l.State == LeaseHit && l.Entry == nil:
			failed = append(failed, k)
		case l.State == LeaseHit:
			c.ctr.leaseHits.Add(1)
			if waiting {
				c.ctr.leaseWaitHits.Add(1)
			}
			r.resolve(k, entryResult(k, *l.Entry).at(asked))
		case l.State == LeaseWon:
			c.ctr.leaseWon.Add(1)
			r.askedAt[k] = asked
			won[k] = l
		case l.State == LeaseHeld && l.Entry != nil && c.servesStale(*l.Entry, now) && c.fresherThan(*l.Entry, l.Marker):
			// Someone is reloading it; stale-while-revalidate allows the
			// old value meanwhile.
			c.ctr.refreshStale.Add(1)
			r.resolve(k, entryResult(k, *l.Entry).at(asked))
		case l.State == LeaseHeld:
			r.askedAt[k] = asked
			held[k] = l
		default:
			failed = append(failed, k)
		}
	}
	return won, held, failed
}

// settle resolves the keys whose lease this flight won (from the durable
// tiers or the source) and those someone else holds (from the durable
// tiers, or by waiting).
func (r *loadRun) settle(won, held map[string]Lease) {
	if len(won)+len(held) == 0 {
		return
	}
	won, held = r.fromDurable(won, held)
	r.fromSourceLeased(won)
	r.await(held)
}

// fromDurable asks the tiers below the top for the keys, in order, and
// serves every copy loaded after the key's last invalidation: it fills the
// top tier through the lease when the lease is ours, and leaves the top
// tier to the lease holder otherwise. A copy older than the marker is
// stale: it is deleted and the key looked up further down. It returns the
// keys still unanswered.
func (r *loadRun) fromDurable(won, held map[string]Lease) (map[string]Lease, map[string]Lease) {
	c := r.c
	leases := make(map[string]Lease, len(won)+len(held))
	remaining := make([]string, 0, len(won)+len(held))
	for _, m := range []map[string]Lease{won, held} {
		for k, l := range m {
			leases[k] = l
			remaining = append(remaining, k)
		}
	}
	for i := c.leaseAt + 1; i < len(c.tiers) && len(remaining) > 0; i++ {
		t := c.tiers[i]
		var rejected []string
		accept := func(key string, e Entry) bool {
			if c.fresherThan(e, leases[key].Marker) {
				return true
			}
			rejected = append(rejected, key)
			return false
		}
		hits, misses := c.lookupTier(r.ctx, t, remaining, &r.stale, accept)
		if len(rejected) > 0 {
			c.ctr.leaseRejected.Add(int64(len(rejected)))
			r.dropStale(t, rejected)
		}
		for j := range hits {
			l := leases[hits[j].key]
			hits[j].readAt = r.askedAt[hits[j].key]
			if l.State == LeaseWon {
				hits[j].lease = &l
			} else {
				hits[j].skipTop = true
			}
		}
		r.backfill(hits, i)
		remaining = misses
	}
	won, held = make(map[string]Lease), make(map[string]Lease)
	for _, k := range remaining {
		if l := leases[k]; l.State == LeaseWon {
			won[k] = l
		} else {
			held[k] = l
		}
	}
	return won, held
}

// dropStale deletes from t the copies of keys an invalidation marker made
// stale: they can never be served again, and a fresh value loaded now
// must be able to take their place.
func (r *loadRun) dropStale(t *chainTier, keys []string) {
	ctx := context.WithoutCancel(r.ctx)
	for _, k := range keys {
		delete(r.stale, k)
		if err := t.tier.Delete(ctx, k); err != nil {
			t.ctr.errors.Add(1)
		}
	}
}

// fromSourceLeased loads the keys whose lease this flight holds, one Load call
// per batch, and fills them through their leases. A failed load releases
// the leases so that the waiters need not wait for them to expire.
func (r *loadRun) fromSourceLeased(won map[string]Lease) {
	if len(won) == 0 {
		return
	}
	c := r.c
	keys := make([]string, 0, len(won))
	for k := range won {
		keys = append(keys, k)
	}
	for start := 0; start < len(keys); start += c.loadBatch {
		chunk := keys[start:min(start+c.loadBatch, len(keys))]
		if r.ctx.Err() != nil {
			r.release(chunk, won) // nobody is waiting any more
			continue
		}
		begun, readAt := c.clock.Now(), time.Now()
		values, err := c.callLoader(r.ctx, chunk)
		if err != nil {
			r.release(chunk, won)
			c.failLoad(chunk, err, r.stale, r.resolve)
			continue
		}
		out := c.freshFound(chunk, values, begun)
		for i := range out {
			l := won[out[i].key]
			out[i].lease, out[i].readAt = &l, readAt
		}
		r.backfill(out, len(c.tiers))
	}
}

func (r *loadRun) release(keys []string, leases map[string]Lease) {
	ctx := context.WithoutCancel(r.ctx)
	for _, k := range keys {
		r.c.ctr.leaseReleased.Add(1)
		if err := r.c.leaser.Release(ctx, k, leases[k]); err != nil {
			r.c.tiers[r.c.leaseAt].ctr.errors.Add(1)
		}
	}
}

// await waits for the holders of the keys' leases to fill them, polling
// the top tier with a growing pause. A key whose lease comes free (its
// holder died or gave up) is won by one of the waiters, which loads it.
// Keys still held when the wait limit passes are loaded here, without a
// lease, and not written into the top tier. It returns early, leaving the
// keys unresolved, when nobody waits for the flight any more.
func (r *loadRun) await(held map[string]Lease) {
	if len(held) == 0 {
		return
	}
	c := r.c
	c.ctr.leaseWaits.Add(int64(len(held)))
	deadline := c.clock.Now().Add(c.lease.wait)
	pause := leasePollFirst
	for len(held) > 0 {
		now := c.clock.Now()
		if !now.Before(deadline) {
			c.ctr.leaseTimeouts.Add(int64(len(held)))
			r.loadUnleased(mapKeys(held))
			return
		}
		if c.sleep(r.ctx, min(pause, deadline.Sub(now))) != nil {
			return
		}
		pause = min(2*pause, leasePollMax)
		c.ctr.leasePolls.Add(1)
		won, still, failed := r.ask(mapKeys(held), true)
		held = still
		if len(failed) > 0 {
			c.ctr.leaseFallbacks.Add(int64(len(failed)))
			r.loadUnleased(failed)
		}
		if len(won) > 0 {
			won, _ = r.fromDurable(won, nil)
			r.fromSourceLeased(won)
		}
	}
}

// loadUnleased loads keys from the source without a lease and writes them
// into every tier but the top: only a lease holder may fill the top tier,
// and this load may have raced with an invalidation. The durable copies it
// writes carry their load time, which the invalidation's marker outdates.
func (r *loadRun) loadUnleased(keys []string) {
	c := r.c
	for start := 0; start < len(keys); start += c.loadBatch {
		chunk := keys[start:min(start+c.loadBatch, len(keys))]
		begun, readAt := c.clock.Now(), time.Now()
		values, err := c.callLoader(r.ctx, chunk)
		if err != nil {
			c.failLoad(chunk, err, r.stale, r.resolve)
			continue
		}
		out := c.freshFound(chunk, values, begun)
		for i := range out {
			out[i].skipTop, out[i].readAt = true, readAt
		}
		r.backfill(out, len(c.tiers))
	}
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// sleepCtx waits for d or until ctx ends, and returns ctx's error then.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
