package serve

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tiercache/tiercache/tier"
)

// Plain is the Backend of keys that match no route: a cache and nothing
// behind it, as memcached (or twemproxy in front of it) is. Items live in
// the tiers given to NewPlain, top first, each as a tier.Entry whose value
// holds the client flags and the CAS token with the client's bytes (see
// item.go), and whose expiry is the client's exptime.
//
// A tier that fails is a miss for reads (a cache that is down holds
// nothing); a write that fails at the top tier is an error. Plain is safe
// for concurrent use.
type Plain struct {
	tiers []tier.Tier
	clock func() time.Time
	cas   atomic.Uint64
	ctr   plainCounters
}

type plainCounters struct {
	hits, misses, readErrors, badItems, backfills atomic.Int64
}

var (
	_ Backend = (*Plain)(nil)
	_ Adder   = (*Plain)(nil)
	_ Counter = (*Plain)(nil)
)

// NewPlain returns the plain-cache Backend over tiers, top first (usually
// the memcached tier alone, or memcached then a bbolt store). A lookup
// found in a lower tier is added to the tiers above it. The tiers stay the
// caller's: Plain never closes them.
func NewPlain(tiers ...tier.Tier) (*Plain, error) {
	if len(tiers) == 0 {
		return nil, fmt.Errorf("%w: the plain cache needs at least one tier", ErrInvalidOption)
	}
	p := &Plain{tiers: tiers, clock: time.Now}
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("serve: seeding CAS tokens: %w", err)
	}
	// Tokens start at a random point so that two servers, or one server
	// restarted, do not hand out the same tokens for different values.
	p.cas.Store(binary.BigEndian.Uint64(seed[:]) >> 1)
	return p, nil
}

// nextCAS returns a token not handed out before by this Plain, never 0.
func (p *Plain) nextCAS() uint64 {
	for {
		if c := p.cas.Add(1); c != 0 {
			return c
		}
	}
}

// Get implements Backend.
func (p *Plain) Get(ctx context.Context, keys []string) (map[string]Item, error) {
	out := make(map[string]Item, len(keys))
	missing := keys
	now := p.clock()
	for i, t := range p.tiers {
		if len(missing) == 0 {
			break
		}
		found := p.lookup(ctx, t, missing)
		var still []string
		for _, k := range missing {
			e, ok := found[k]
			if !ok || e.Expired(now) {
				still = append(still, k)
				continue
			}
			it, err := decodeItem(e.Value)
			if err != nil {
				p.ctr.badItems.Add(1)
				still = append(still, k)
				continue
			}
			it.Expires = e.Expires
			out[k] = it
			if i > 0 {
				p.backfill(ctx, k, e, i)
			}
		}
		missing = still
	}
	p.ctr.hits.Add(int64(len(out)))
	p.ctr.misses.Add(int64(len(missing)))
	return out, nil
}

// plainBatch is the most keys asked of a tier in one multi-get, and
// plainBatches how many such multi-gets one command has in flight: a get
// of thousands of keys (memcslap's mget) is read in pieces, each small
// enough to arrive within the tier's timeout, a few at a time.
const (
	plainBatch   = 100
	plainBatches = 4
)

// lookup reads keys from one tier, a batch per round trip when it can.
func (p *Plain) lookup(ctx context.Context, t tier.Tier, keys []string) map[string]tier.Entry {
	if mg, ok := t.(tier.MultiGetter); ok && len(keys) > 1 {
		out := make(map[string]tier.Entry, len(keys))
		if len(keys) <= plainBatch {
			m, err := mg.GetMulti(ctx, keys)
			if err != nil {
				p.ctr.readErrors.Add(1)
			}
			maps.Copy(out, m)
			return out
		}
		var (
			mu sync.Mutex
			g  errgroup.Group
		)
		g.SetLimit(plainBatches)
		for batch := range slices.Chunk(keys, plainBatch) {
			g.Go(func() error {
				m, err := mg.GetMulti(ctx, batch)
				if err != nil {
					p.ctr.readErrors.Add(1)
				}
				mu.Lock()
				maps.Copy(out, m)
				mu.Unlock()
				return nil
			})
		}
		g.Wait()
		return out
	}
	m := make(map[string]tier.Entry, len(keys))
	for _, k := range keys {
		e, err := t.Get(ctx, k)
		switch {
		case err == nil:
			m[k] = e
		case !errors.Is(err, tier.ErrMiss):
			p.ctr.readErrors.Add(1)
		}
	}
	return m
}

// backfill adds an entry found in tier i to the tiers above it, with add so
// that a newer write there is kept.
func (p *Plain) backfill(ctx context.Context, key string, e tier.Entry, i int) {
	for _, t := range p.tiers[:i] {
		if a, ok := t.(tier.Adder); ok {
			if a.Add(ctx, key, e) == nil {
				p.ctr.backfills.Add(1)
			}
		}
	}
}

// Set implements Backend. Every tier gets the item, bottom up, so that an
// item visible at the top is backed by the tiers below. An item already
// expired deletes the key instead, as memcached does with a negative
// exptime.
func (p *Plain) Set(ctx context.Context, key string, it Item) (uint64, error) {
	if !it.Expires.IsZero() && !p.clock().Before(it.Expires) {
		_, err := p.Delete(ctx, key)
		return p.nextCAS(), err
	}
	cas := p.nextCAS()
	e := tier.Entry{Value: encodeItem(it, cas), Expires: it.Expires}
	var errs []error
	for i := len(p.tiers) - 1; i >= 0; i-- {
		if err := p.tiers[i].Set(ctx, key, e); err != nil {
			errs = append(errs, fmt.Errorf("serve: set %q in %s: %w", key, tierName(p.tiers[i]), err))
		}
	}
	return cas, errors.Join(errs...)
}

// Add implements Adder: the top tier decides, atomically when it is a
// tier.Adder (memcached's add); the tiers below then get the item.
func (p *Plain) Add(ctx context.Context, key string, it Item) (uint64, error) {
	cas := p.nextCAS()
	e := tier.Entry{Value: encodeItem(it, cas), Expires: it.Expires}
	top := p.tiers[0]
	a, ok := top.(tier.Adder)
	if !ok {
		found, err := p.Get(ctx, []string{key})
		if err != nil {
			return 0, err
		}
		if _, ok := found[key]; ok {
			return 0, fmt.Errorf("serve: add %q: %w", key, ErrNotStored)
		}
		return p.Set(ctx, key, it)
	}
	if err := a.Add(ctx, key, e); err != nil {
		if errors.Is(err, tier.ErrNotStored) {
			return 0, fmt.Errorf("serve: add %q: %w", key, ErrNotStored)
		}
		return 0, fmt.Errorf("serve: add %q in %s: %w", key, tierName(top), err)
	}
	var errs []error
	for _, t := range p.tiers[1:] {
		if err := t.Set(ctx, key, e); err != nil {
			errs = append(errs, fmt.Errorf("serve: set %q in %s: %w", key, tierName(t), err))
		}
	}
	return cas, errors.Join(errs...)
}

// Delete implements Backend. It reports whether a tier held a live item,
// which costs a lookup first: memcached's delete says so, the tiers'
// Delete does not.
func (p *Plain) Delete(ctx context.Context, key string) (bool, error) {
	found, _ := p.Get(ctx, []string{key})
	_, had := found[key]
	var errs []error
	for _, t := range p.tiers {
		if err := t.Delete(ctx, key); err != nil {
			errs = append(errs, fmt.Errorf("serve: delete %q in %s: %w", key, tierName(t), err))
		}
	}
	return had, errors.Join(errs...)
}

// Counters implements Counter.
func (p *Plain) Counters() map[string]int64 {
	return map[string]int64{
		"hits":        p.ctr.hits.Load(),
		"misses":      p.ctr.misses.Load(),
		"read_errors": p.ctr.readErrors.Load(),
		"bad_items":   p.ctr.badItems.Load(),
		"backfills":   p.ctr.backfills.Load(),
	}
}

// tierName is a tier's name in errors: its Name method, or its type.
func tierName(t tier.Tier) string {
	if n, ok := t.(interface{ Name() string }); ok {
		return n.Name()
	}
	return fmt.Sprintf("%T", t)
}
