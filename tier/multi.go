package tier

import (
	"context"
	"errors"
	"fmt"
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
		hits, misses := c.lookupTier(ctx, c.tiers[0], good, nil)
		for _, h := range hits {
			if !h.entry.Negative {
				out[h.key] = h.entry.Value
			}
		}
		remaining, from = misses, 1
	}
	if len(remaining) == 0 {
		return out, errors.Join(errs...)
	}

	own, joined, f, loadCtx, flights := c.flights.claim(ctx, remaining)
	defer c.releaseAll(flights)
	c.ctr.sharedWaits.Add(int64(len(joined)))
	if f != nil {
		if c.completed.Load() != completed {
			from = 0
		}
		c.startLoad(loadCtx, f, own, from)
	}
	for _, k := range remaining {
		cl, ok := joined[k]
		if !ok {
			cl = f.calls[k]
		}
		res := wait(ctx, cl)
		switch {
		case res.err == nil:
			out[k] = res.value
		case errors.Is(res.err, ErrNotFound):
		case ctx.Err() != nil:
			return out, errors.Join(append(errs, ctx.Err())...)
		default:
			errs = append(errs, res.err)
		}
	}
	return out, errors.Join(errs...)
}
