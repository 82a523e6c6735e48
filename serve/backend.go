package serve

import (
	"context"
	"time"
)

// Item is a value as a memcached client sees it.
type Item struct {
	Value []byte
	// Flags are the client's 32 opaque bits (PHP's extensions keep the
	// serializer type there).
	Flags uint32
	// CAS is the item's compare-and-swap token, never 0 for an item a
	// Backend returns. The Backend decides it: it changes whenever the
	// item does.
	CAS uint64
	// Expires is when the item stops being valid; zero means no expiry
	// (or, for a read-through route, the route's own TTLs).
	Expires time.Time
}

// Backend is what the server needs from the store behind a route. It must
// be safe for concurrent use.
type Backend interface {
	// Get returns the items of keys that are present; absent keys are
	// absent from the map. A Backend returns what it found even when it
	// also returns an error about the others.
	Get(ctx context.Context, keys []string) (map[string]Item, error)
	// Set stores it under key, replacing what is there, and returns the
	// item's new CAS.
	Set(ctx context.Context, key string, it Item) (uint64, error)
	// Delete removes key and reports whether it was there; a Backend
	// that cannot tell without a costly lookup (a read-through route,
	// whose source may hold the key) reports true. Deleting a key that is
	// not there is not an error.
	Delete(ctx context.Context, key string) (bool, error)
}

// Adder is a Backend that can store an item only when its key is absent,
// in one step the store makes atomic (memcached's add). Add returns an
// error wrapping ErrNotStored when the key was present. Without it, the
// server checks with Get under its key lock.
type Adder interface {
	Add(ctx context.Context, key string, it Item) (uint64, error)
}

// Counter is a Backend whose state the stats command reports: name value
// pairs, appended after memcached's own.
type Counter interface {
	Counters() map[string]int64
}

// Toucher is a Backend with its own idea of touch: it reports whether key
// is present and gives it expires where it keeps per-key expiries. Without
// it, the server rewrites the item with the new expiry under its key lock.
type Toucher interface {
	Touch(ctx context.Context, key string, expires time.Time) (Item, bool, error)
}
