package tier

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// leaseTier is an in-process top tier with leases, as the memcached tier
// implements them, for unit tests: several Caches over one leaseTier are
// several processes over one memcached. Time is the chain's (the Now of
// each LeaseRequest, the clock for the rest).
type leaseTier struct {
	clock Clock
	mu    sync.Mutex
	items map[string]*leaseItem
	cas   uint64
	fail  atomic.Bool

	leaseCalls, fills, refused, invalidations atomic.Int64
	// beforeFill, when set, runs before every Fill (without the lock).
	beforeFill func(key string)
}

// leaseItem is what the tier holds for a key: a stub (no entry, no
// marker, a lease until stubUntil), or an entry and/or a marker, maybe
// with a lease taken over them.
type leaseItem struct {
	cas        uint64
	stub       bool
	entry      *Entry
	marker     Marker
	leaseUntil time.Time
}

var (
	_ Tier        = (*leaseTier)(nil)
	_ Adder       = (*leaseTier)(nil)
	_ MultiGetter = (*leaseTier)(nil)
	_ Leaser      = (*leaseTier)(nil)
)

func newLeaseTier(clock Clock) *leaseTier {
	return &leaseTier{clock: clock, items: make(map[string]*leaseItem)}
}

func (t *leaseTier) Name() string { return "leases" }

// live returns key's item, dropping a stub whose lease ran out at now.
func (t *leaseTier) live(key string, now time.Time) *leaseItem {
	it := t.items[key]
	if it != nil && it.stub && !now.Before(it.leaseUntil) {
		delete(t.items, key)
		return nil
	}
	return it
}

func (t *leaseTier) Get(_ context.Context, key string) (Entry, error) {
	if t.fail.Load() {
		return Entry{}, errDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if it := t.live(key, t.clock.Now()); it != nil && it.entry != nil {
		return *it.entry, nil
	}
	return Entry{}, ErrMiss
}

func (t *leaseTier) GetMulti(ctx context.Context, keys []string) (map[string]Entry, error) {
	out := make(map[string]Entry)
	for _, k := range keys {
		e, err := t.Get(ctx, k)
		if err == nil {
			out[k] = e
		} else if !isMissErr(err) {
			return out, err
		}
	}
	return out, nil
}

func isMissErr(err error) bool { return err == ErrMiss }

func (t *leaseTier) put(key string, it *leaseItem) {
	t.cas++
	it.cas = t.cas
	t.items[key] = it
}

func (t *leaseTier) Set(_ context.Context, key string, e Entry) error {
	if t.fail.Load() {
		return errDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.put(key, &leaseItem{entry: &e})
	return nil
}

func (t *leaseTier) Add(_ context.Context, key string, e Entry) error {
	if t.fail.Load() {
		return errDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.live(key, t.clock.Now()) != nil {
		return ErrNotStored
	}
	t.put(key, &leaseItem{entry: &e})
	return nil
}

func (t *leaseTier) Delete(_ context.Context, key string) error {
	if t.fail.Load() {
		return errDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.items, key)
	return nil
}

func (t *leaseTier) Lease(_ context.Context, keys []string, req LeaseRequest) (map[string]Lease, error) {
	t.leaseCalls.Add(1)
	if t.fail.Load() {
		return nil, errDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]Lease)
	for _, k := range keys {
		it := t.live(k, req.Now)
		switch {
		case it == nil:
			t.put(k, &leaseItem{stub: true, leaseUntil: req.Now.Add(req.TTL)})
			out[k] = Lease{State: LeaseWon, Token: t.cas}
		case it.entry != nil && !it.entry.Expired(req.Now) && (!req.Refresh || !req.Replacing.IsZero() && it.entry.Loaded.After(req.Replacing)):
			out[k] = Lease{State: LeaseHit, Entry: it.entry, Marker: it.marker}
		case it.stub || req.Now.Before(it.leaseUntil):
			out[k] = Lease{State: LeaseHeld, Entry: it.entry, Marker: it.marker}
		default:
			t.put(k, &leaseItem{entry: it.entry, marker: it.marker, leaseUntil: req.Now.Add(req.TTL)})
			out[k] = Lease{State: LeaseWon, Entry: it.entry, Marker: it.marker, Token: t.cas}
		}
	}
	return out, nil
}

func (t *leaseTier) Fill(_ context.Context, key string, l Lease, w LeaseWrite) error {
	if t.beforeFill != nil {
		t.beforeFill(key)
	}
	if t.fail.Load() {
		return errDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	it := t.live(key, t.clock.Now())
	if it == nil || it.cas != l.Token {
		t.refused.Add(1)
		return ErrLeaseLost
	}
	t.fills.Add(1)
	t.put(key, &leaseItem{entry: w.Entry, marker: w.Marker})
	return nil
}

func (t *leaseTier) Release(_ context.Context, key string, l Lease) error {
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

func (t *leaseTier) Invalidate(_ context.Context, key string, w LeaseWrite) error {
	t.invalidations.Add(1)
	if t.fail.Load() {
		return errDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.put(key, &leaseItem{entry: w.Entry, marker: w.Marker})
	return nil
}

// item returns a copy of what the tier holds for key.
func (t *leaseTier) item(key string) (leaseItem, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	it, ok := t.items[key]
	if !ok {
		return leaseItem{}, false
	}
	return *it, true
}
