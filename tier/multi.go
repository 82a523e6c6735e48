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
// that reached the source. Keys another caller (Get or GetMulti) is already
// looking up are joined, not looked up twice.
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

	if err := ctx.Err(); err != nil {
		return out, errors.Join(append(errs, err)...)
	}
	var claimed time.Time
	if c.leaser != nil {
		claimed = time.Now()
	}
	remaining := good
	for len(remaining) > 0 {
		var late []string
		var stopped bool
		late, errs, stopped = c.loadSharedMulti(ctx, remaining, claimed, out, errs)
		if stopped {
			return out, errors.Join(append(errs, ctx.Err())...)
		}
		remaining = late
	}
	return out, errors.Join(errs...)
}

// loadSharedMulti loads keys in a flight, joining the flights already
// loading some of them, and puts what it gets in out. It returns the keys
// whose joined flight had read them before claimed (another process's
// invalidation may lie in between: see result.late), to be loaded again,
// and stopped when ctx ended first.
func (c *Cache) loadSharedMulti(ctx context.Context, keys []string, claimed time.Time, out map[string][]byte, errs []error) (late []string, _ []error, stopped bool) {
	own, joined, f, loadCtx := c.flights.claim(ctx, keys)
	c.ctr.sharedWaits.Add(int64(len(joined)))
	if f != nil {
		c.start(loadCtx, f, own)
	}
	for _, k := range keys {
		cl, ok := joined[k]
		if !ok {
			cl = f.call(k)
		}
		res := wait(ctx, cl)
		if res.late(claimed) {
			res = res.confirmed(ctx)
		}
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
