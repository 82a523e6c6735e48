package tier

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// GetMulti returns the values of keys, looked up in bulk: one multi-get at
// the top tier (one round trip per memcached node), one batch lookup in each
// tier below for what is still missing, and one Load call per batch of keys
// that reached the source. Keys another caller is already loading are
// joined, not loaded twice.
//
// Keys the source does not have are absent from the map. The map holds
// every key that could be answered even when err is not nil; err then
// describes the others (an invalid key, a failed load), and wraps
// ErrInvalidKey or the loader's error so it can be inspected with errors.Is.
// If ctx ends first, GetMulti returns what it has with ctx's error.
func (c *Cache) GetMulti(ctx context.Context, keys []string) (map[string][]byte, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	out := make(map[string][]byte, len(keys))
	var errs []error
	good := make([]string, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		if err := c.checkKey(k); err != nil {
			errs = append(errs, fmt.Errorf("tier: get multi: key %.32q...: %w", k, err))
			continue
		}
		good = append(good, k)
	}
	c.ctr.multiKeys.Add(int64(len(good)))
	if len(good) == 0 {
		return out, errors.Join(errs...)
	}

	completed := c.completed.Load()
	remaining, from := good, 0
	if len(c.tiers) > 0 {
		var stale map[string]Entry
		if c.grace > 0 {
			stale = make(map[string]Entry)
		}
		hits, misses := c.lookupTier(ctx, c.tiers[0], good, stale, nil)
		for _, h := range hits {
			if !h.entry.Negative {
				out[h.key] = h.entry.Value
			}
		}
		if c.beta > 0 || c.grace > 0 {
			misses = c.refreshTop(hits, stale, misses, out)
		}
		remaining, from = misses, 1
	}
	if len(remaining) == 0 {
		return out, errors.Join(errs...)
	}

	claimed := time.Now()
	for len(remaining) > 0 {
		var late []string
		var stopped bool
		late, errs, stopped = c.loadSharedMulti(ctx, remaining, from, completed, claimed, out, errs)
		if stopped {
			return out, errors.Join(append(errs, ctx.Err())...)
		}
		remaining, from = late, 0
	}
	return out, errors.Join(errs...)
}

// loadSharedMulti loads keys in a flight, joining the flights already
// loading some of them, and puts what it gets in out. It returns the keys
// whose joined flight had read them before claimed (another process's
// invalidation may lie in between: see result.late), to be loaded again,
// and stopped when ctx ended first.
func (c *Cache) loadSharedMulti(ctx context.Context, keys []string, from int, completed uint64, claimed time.Time, out map[string][]byte, errs []error) (late []string, _ []error, stopped bool) {
	own, joined, f, loadCtx, flights := c.flights.claim(ctx, keys)
	defer c.releaseAll(flights)
	c.ctr.sharedWaits.Add(int64(len(joined)))
	if f != nil {
		if c.completed.Load() != completed {
			from = 0
		}
		c.startLoad(loadCtx, f, own, from)
	}
	for _, k := range keys {
		cl, ok := joined[k]
		if !ok {
			cl = f.calls[k]
		}
		res := wait(ctx, cl)
		switch {
		case res.late(claimed) && ctx.Err() == nil:
			c.ctr.leaseRejoins.Add(1)
			c.flights.forgetCall(k, cl)
			late = append(late, k)
		case res.err == nil:
			out[k] = res.value
		case errors.Is(res.err, ErrNotFound):
		case ctx.Err() != nil:
			return nil, errs, true
		default:
			errs = append(errs, res.err)
		}
	}
	return late, errs, false
}
