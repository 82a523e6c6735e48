package serve

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// ReadThrough is the Backend of a route: a read-through tier.Cache, whose
// values come from the source of truth and carry client flags 0.
//
//   - Get is the chain's GetMulti: one trip per key however many clients
//     ask at once, one SQL statement per batch of keys that reached the
//     source. A key the source does not have is a miss, and so is one it
//     could not be asked for, unless WithSourceErrorReplies.
//   - Set writes every tier (after the application has updated the
//     source). Exptimes are ignored: the route's tiers keep their own
//     TTLs. Non-zero client flags are refused with ErrFlags, since the
//     chain's tiers keep only the bytes.
//   - Delete invalidates every tier and reports the key as deleted: the
//     source may still hold it, and asking it would cost a query.
//   - The CAS token of a value is a hash of its bytes, so a cas on a
//     read-through key succeeds exactly when the value has not changed
//     since the gets (see docs/serve.md).
//
// ReadThrough is safe for concurrent use. It never closes the cache.
type ReadThrough struct {
	cache        *tier.Cache
	errorReplies bool
	sourceErrs   atomic.Int64
}

var (
	_ Backend = (*ReadThrough)(nil)
	_ Counter = (*ReadThrough)(nil)
	_ Toucher = (*ReadThrough)(nil)
)

// ReadThroughOption configures a ReadThrough.
type ReadThroughOption func(*ReadThrough) error

// WithSourceErrorReplies makes a key the chain could not load (the source
// is down and no stale copy is allowed) an error, which the server answers
// with SERVER_ERROR for the whole command, instead of a miss. It is not the
// default because clients take it badly: php-memcache marks the server
// failed for its retry interval, php-memcached reports a miss anyway.
func WithSourceErrorReplies() ReadThroughOption {
	return func(r *ReadThrough) error { r.errorReplies = true; return nil }
}

// NewReadThrough returns the Backend of a route over cache.
func NewReadThrough(cache *tier.Cache, opts ...ReadThroughOption) (*ReadThrough, error) {
	if cache == nil {
		return nil, fmt.Errorf("%w: nil cache", ErrInvalidOption)
	}
	r := &ReadThrough{cache: cache}
	for _, opt := range opts {
		if err := opt(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Get implements Backend.
func (r *ReadThrough) Get(ctx context.Context, keys []string) (map[string]Item, error) {
	m, err := r.cache.GetMulti(ctx, keys)
	out := make(map[string]Item, len(m))
	for k, v := range m {
		out[k] = Item{Value: v, CAS: valueCAS(v)}
	}
	if err != nil {
		r.sourceErrs.Add(1)
		if !r.errorReplies {
			return out, nil
		}
		return out, fmt.Errorf("serve: read through: %w", err)
	}
	return out, nil
}

// Set implements Backend.
func (r *ReadThrough) Set(ctx context.Context, key string, it Item) (uint64, error) {
	if it.Flags != 0 {
		return 0, fmt.Errorf("serve: set %q with flags %d: %w", key, it.Flags, ErrFlags)
	}
	if err := r.cache.Set(ctx, key, it.Value); err != nil {
		return 0, err
	}
	return valueCAS(it.Value), nil
}

// Touch implements Toucher: it reads the key through and changes nothing,
// since a route's tiers keep their own TTLs.
func (r *ReadThrough) Touch(ctx context.Context, key string, _ time.Time) (Item, bool, error) {
	m, err := r.Get(ctx, []string{key})
	it, ok := m[key]
	return it, ok, err
}

// Delete implements Backend.
func (r *ReadThrough) Delete(ctx context.Context, key string) (bool, error) {
	return true, r.cache.Delete(ctx, key)
}

// Counters implements Counter with the chain's counters.
func (r *ReadThrough) Counters() map[string]int64 {
	st := r.cache.Stats()
	m := map[string]int64{
		"gets":              st.Gets,
		"multi_keys":        st.MultiKeys,
		"flights":           st.Flights,
		"shared_waits":      st.SharedWaits,
		"stale_served":      st.StaleServed,
		"invalidations":     st.Invalidations,
		"loader_statements": st.Loader.Statements,
		"loader_keys":       st.Loader.Keys,
		"loader_loaded":     st.Loader.Loaded,
		"loader_not_found":  st.Loader.NotFound,
		"loader_errors":     st.Loader.Errors,
		"source_errors":     r.sourceErrs.Load(),
	}
	for _, t := range st.Tiers {
		m[t.Name+"_hits"] = t.Hits
		m[t.Name+"_misses"] = t.Misses
		m[t.Name+"_errors"] = t.Errors
		m[t.Name+"_backfills"] = t.Backfills
	}
	return m
}

// valueCAS is the CAS token of a read-through value: its FNV-1a hash,
// never 0.
func valueCAS(v []byte) uint64 {
	h := fnv.New64a()
	h.Write(v)
	if s := h.Sum64(); s != 0 {
		return s
	}
	return 1
}
