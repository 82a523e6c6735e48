package tier

import (
	"context"
	"iter"
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

	// Loaded is when the load that produced the value began: the value is
	// the source's as of that time. With leases (WithLeases) a copy in a
	// durable tier is served only when it was loaded after the last
	// invalidation the top tier remembers for the key. Zero when unknown,
	// which no invalidation marker lets through.
	Loaded time.Time
	// Delta is how long that load took. Early refresh (WithEarlyRefresh)
	// reloads a value about that long before it expires. Zero when
	// unknown: such a value is never refreshed early.
	Delta time.Duration
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

// HotScanner is a Scanner that can list the entries used most recently
// first, so that a warmup brings the working set back before the long
// tail. ScanHot has Scan's contract otherwise; warmup prefers it when the
// durable tier has it.
type HotScanner interface {
	ScanHot(ctx context.Context, fn func(key string, e Entry) error) error
}

// Sized is a Tier that can tell about how many entries it holds without
// listing them. Warmup uses it to estimate how far along it is.
type Sized interface {
	Len() int64
}

// BulkAdder is an Adder that can add a stream of entries far faster than
// one Add at a time, by pipelining them (memcached's meta protocol). Warmup
// uses it when the tier it fills has it.
//
// AddBulk adds every entry entries yields, with Add's semantics, until the
// sequence ends or ctx does. It may keep nothing entries yields once the
// yield returns: the sequence may reuse its buffers. For every entry
// yielded it calls done exactly once, before AddBulk returns, with what Add
// would have returned: nil when the entry was stored (or had expired and
// was not worth sending), an error wrapping ErrNotStored when the key was
// present, ErrTooLarge when the tier cannot hold it, any other error when
// the write failed. done may be called from several goroutines at once and
// must be quick. AddBulk returns an error only when it stopped early (ctx
// ended, the tier closed); failures of single entries go to done.
type BulkAdder interface {
	AddBulk(ctx context.Context, entries iter.Seq2[string, Entry], done func(key string, err error)) error
}

// Restart tells the chain that one server of a tier lost what it held: the
// process restarted, or the cache was flushed, while this process kept
// running.
type Restart struct {
	// Node names the server, as the tier knows it (its address).
	Node string
	// Reason is "restarted" (a new server process) or "flushed" (the same
	// process, its items gone).
	Reason string
	// Owns reports whether the tier places key on Node, as placement stood
	// when the restart was noticed; nil means every key (a single node).
	Owns func(key string) bool
}

// RestartWatcher is a Tier that notices when one of its servers restarts
// or is flushed. With WithAutoWarmup the chain refills that server's keys
// from the durable tier as soon as a Restart arrives.
//
// Restarts returns the channel the tier reports on, or nil when it does not
// watch (memcached without WithRestartDetection). The tier closes the
// channel when it is closed, and drops, counting them, reports nobody reads.
type RestartWatcher interface {
	Restarts() <-chan Restart
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
