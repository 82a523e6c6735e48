package tier

import (
	"context"
	"time"
)

// Entry is what every tier stores for a key: the value, when it stops being
// valid, and whether it records that the source of truth has no such key.
//
// Expires is absolute so that a copy moved from one tier to another keeps the
// time it has left instead of starting a fresh TTL. The zero Expires means
// the entry never expires.
type Entry struct {
	Value    []byte
	Expires  time.Time
	Negative bool
}

// Expired reports whether the entry is no longer valid at now.
func (e Entry) Expired(now time.Time) bool {
	return !e.Expires.IsZero() && !now.Before(e.Expires)
}

// Tier is one level of the cache chain. Implementations must be safe for
// concurrent use.
//
// A Tier stores whatever Entry it is handed, expired or not, and returns it
// unchanged: the chain, not the tier, decides whether an entry is fresh. A
// tier may drop entries on its own once they have expired.
type Tier interface {
	// Get returns the entry stored for key, or an error wrapping ErrMiss
	// when there is none.
	Get(ctx context.Context, key string) (Entry, error)
	// Set stores e for key, replacing what is there.
	Set(ctx context.Context, key string, e Entry) error
	// Delete removes key. Deleting a key that is not there is not an error.
	Delete(ctx context.Context, key string) error
}

// Adder is a Tier that can store an entry only when the key is absent.
// Backfill and warmup use it so that they never overwrite a value that live
// traffic wrote in the meantime. Add returns an error wrapping ErrNotStored
// when the key was already present.
type Adder interface {
	Add(ctx context.Context, key string, e Entry) error
}

// MultiGetter is a Tier that can look up many keys in one round trip. Keys
// it does not hold are absent from the returned map. A MultiGetter returns
// what it found even when it also returns an error for part of the batch.
type MultiGetter interface {
	GetMulti(ctx context.Context, keys []string) (map[string]Entry, error)
}

// Scanner is a Tier whose entries can be listed; warmup copies them into the
// tiers above it. fn is called for every entry until it returns an error,
// which Scan then returns.
type Scanner interface {
	Scan(ctx context.Context, fn func(key string, e Entry) error) error
}

// Counter is a Tier that reports counters of its own (queue depth, batches
// written, GC deletions...). They appear in Stats beside the chain's own
// per-tier counters.
type Counter interface {
	Counters() map[string]int64
}

// NodeReporter is a Tier spread over several servers (a memcached pool)
// that reports each server's state and counters. They appear in Stats under
// the tier, for per-node dashboards.
type NodeReporter interface {
	NodeStats() []NodeStats
}

// NodeStats is one server of a tier spread over several.
type NodeStats struct {
	// Name is the server's name as configured ("cache-a"), or its address.
	Name string
	Addr string
	// State is "up", "down" (ejected after failures, retried later) or
	// "probing".
	State string
	// Counters are the node's own counts: requests, hits, misses, errors,
	// timeouts, ejections, open connections...
	Counters map[string]int64
}

// Loader is the source of truth. Load returns the values of the keys it
// found; keys absent from the map do not exist. The chain calls Load with at
// most the configured batch size of keys at a time.
type Loader interface {
	Load(ctx context.Context, keys []string) (map[string][]byte, error)
}

// LoaderFunc adapts a function to the Loader interface.
type LoaderFunc func(ctx context.Context, keys []string) (map[string][]byte, error)

// Load calls f(ctx, keys).
func (f LoaderFunc) Load(ctx context.Context, keys []string) (map[string][]byte, error) {
	return f(ctx, keys)
}

// Clock tells the chain what time it is. Tests inject one to move time
// without sleeping.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
