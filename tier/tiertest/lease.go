package tiertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// LeaseTier is an in-memory top tier with leases (tier.Leaser), as the
// memcached tier implements them: several Caches over one LeaseTier behave
// as several processes over one memcached. Lease decisions use the Now of
// each tier.LeaseRequest; the rest uses the clock given to NewLeaseTier.
// It is safe for concurrent use.
type LeaseTier struct {
	clock tier.Clock
	fail  atomic.Bool

	mu    sync.Mutex
	items map[string]*leaseItem
	cas   uint64

	leases, fills, refused, invalidations atomic.Int64
}

// leaseItem is what the tier holds for a key: a stub (no entry, no
// marker, a lease until leaseUntil), or an entry and/or a marker, maybe
// with a lease taken over them.
type leaseItem struct {
	cas        uint64
	stub       bool
	entry      *tier.Entry
	marker     tier.Marker
	leaseUntil time.Time
}

var (
	_ tier.Tier        = (*LeaseTier)(nil)
	_ tier.Adder       = (*LeaseTier)(nil)
	_ tier.MultiGetter = (*LeaseTier)(nil)
	_ tier.Leaser      = (*LeaseTier)(nil)
	_ tier.Counter     = (*LeaseTier)(nil)
)

// NewLeaseTier returns an empty LeaseTier on clock.
func NewLeaseTier(clock tier.Clock) *LeaseTier {
	return &LeaseTier{clock: clock, items: make(map[string]*leaseItem)}
}

// Name returns "leases".
func (t *LeaseTier) Name() string { return "leases" }

// Fail makes every later operation but Release fail with ErrDown while on
// is true.
func (t *LeaseTier) Fail(on bool) { t.fail.Store(on) }

func (t *LeaseTier) down(op string) error {
	if t.fail.Load() {
		return fmt.Errorf("tiertest: %s: %w", op, ErrDown)
	}
	return nil
}

// live returns key's item, dropping a stub whose lease ran out at now.
func (t *LeaseTier) live(key string, now time.Time) *leaseItem {
	it := t.items[key]
	if it != nil && it.stub && !now.Before(it.leaseUntil) {
		delete(t.items, key)
		return nil
	}
	return it
}

// expiredOnly reports whether it holds nothing but an expired entry: no
// marker, no lease.
func (it *leaseItem) expiredOnly(now time.Time) bool {
	return it.entry != nil && it.entry.Expired(now) && it.marker == (tier.Marker{}) && !now.Before(it.leaseUntil)
}

func (t *LeaseTier) put(key string, it *leaseItem) {
	t.cas++
	it.cas = t.cas
	t.items[key] = it
}

// Get implements tier.Tier: the entry, if the key has one.
func (t *LeaseTier) Get(_ context.Context, key string) (tier.Entry, error) {
	if err := t.down("get"); err != nil {
		return tier.Entry{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if it := t.live(key, t.clock.Now()); it != nil && it.entry != nil {
		return *it.entry, nil
	}
	return tier.Entry{}, fmt.Errorf("tiertest: get %q: %w", key, tier.ErrMiss)
}

// GetMulti implements tier.MultiGetter.
func (t *LeaseTier) GetMulti(ctx context.Context, keys []string) (map[string]tier.Entry, error) {
	if err := t.down("get_multi"); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	out := make(map[string]tier.Entry)
	for _, k := range keys {
		if it := t.live(k, now); it != nil && it.entry != nil {
			out[k] = *it.entry
		}
	}
	return out, nil
}

// Set implements tier.Tier; it drops the key's marker and lease.
func (t *LeaseTier) Set(_ context.Context, key string, e tier.Entry) error {
	if err := t.down("set"); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.put(key, &leaseItem{entry: &e})
	return nil
}

// Add implements tier.Adder: anything held for the key but an expired
// entry alone, a stub or a marker included, makes it fail with
// tier.ErrNotStored.
func (t *LeaseTier) Add(_ context.Context, key string, e tier.Entry) error {
	if err := t.down("add"); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	if it := t.live(key, now); it != nil && !it.expiredOnly(now) {
		return fmt.Errorf("tiertest: add %q: %w", key, tier.ErrNotStored)
	}
	t.put(key, &leaseItem{entry: &e})
	return nil
}

// Delete implements tier.Tier.
func (t *LeaseTier) Delete(_ context.Context, key string) error {
	if err := t.down("delete"); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.items, key)
	return nil
}

// Lease implements tier.Leaser.
func (t *LeaseTier) Lease(_ context.Context, keys []string, req tier.LeaseRequest) (map[string]tier.Lease, error) {
	t.leases.Add(1)
	if err := t.down("lease"); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]tier.Lease)
	for _, k := range keys {
		it := t.live(k, req.Now)
		switch {
		case it == nil:
			t.put(k, &leaseItem{stub: true, leaseUntil: req.Now.Add(req.TTL)})
			out[k] = tier.Lease{State: tier.LeaseWon, Token: t.cas}
		case it.entry != nil && !it.entry.Expired(req.Now) && (!req.Refresh || !req.Replacing.IsZero() && it.entry.Loaded.After(req.Replacing)):
			out[k] = tier.Lease{State: tier.LeaseHit, Entry: it.entry, Marker: it.marker}
		case it.stub || req.Now.Before(it.leaseUntil):
			out[k] = tier.Lease{State: tier.LeaseHeld, Entry: it.entry, Marker: it.marker}
		default:
			t.put(k, &leaseItem{entry: it.entry, marker: it.marker, leaseUntil: req.Now.Add(req.TTL)})
			out[k] = tier.Lease{State: tier.LeaseWon, Entry: it.entry, Marker: it.marker, Token: t.cas}
		}
	}
	return out, nil
}

// Fill implements tier.Leaser.
func (t *LeaseTier) Fill(_ context.Context, key string, l tier.Lease, w tier.LeaseWrite) error {
	if err := t.down("fill"); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	it := t.live(key, t.clock.Now())
	if it == nil || it.cas != l.Token {
		t.refused.Add(1)
		return fmt.Errorf("tiertest: fill %q: %w", key, tier.ErrLeaseLost)
	}
	t.fills.Add(1)
	t.put(key, &leaseItem{entry: w.Entry, marker: w.Marker})
	return nil
}

// Release implements tier.Leaser.
func (t *LeaseTier) Release(_ context.Context, key string, l tier.Lease) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	it := t.items[key]
	switch {
	case it == nil || it.cas != l.Token:
	case it.stub:
		delete(t.items, key)
	default:
		t.put(key, &leaseItem{entry: it.entry, marker: it.marker})
	}
	return nil
}

// Invalidate implements tier.Leaser.
func (t *LeaseTier) Invalidate(_ context.Context, key string, w tier.LeaseWrite) error {
	t.invalidations.Add(1)
	if err := t.down("invalidate"); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.put(key, &leaseItem{entry: w.Entry, marker: w.Marker})
	return nil
}

// Marker returns the invalidation marker the tier holds for key, if any.
func (t *LeaseTier) Marker(key string) (tier.Marker, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	it, ok := t.items[key]
	if !ok {
		return tier.Marker{}, false
	}
	return it.marker, true
}

// Counters implements tier.Counter: lease requests, fills, fills refused
// and invalidations.
func (t *LeaseTier) Counters() map[string]int64 {
	return map[string]int64{
		"lease_calls":   t.leases.Load(),
		"fills":         t.fills.Load(),
		"refused":       t.refused.Load(),
		"invalidations": t.invalidations.Load(),
	}
}
