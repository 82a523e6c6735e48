// Package tier is a read-through cache over a chain of tiers: typically
// memcached on top, a local durable store (bbolt) below it, and a SQL query
// as the source of truth.
//
// # Basics
//
// New takes the source of truth (a Loader) and the tiers, top first, each
// with its TTL. Get asks the tiers in order; a value found lower down, or
// loaded from the source, is written back into every tier above
// (backfill), after the caller has it. A key the source does not have is
// remembered as absent (negative caching) so repeated lookups stop at the
// top tier.
//
// Concurrent lookups of the same key share one trip through the chain,
// the top tier included (singleflight before any I/O), and GetMulti does
// the same in bulk: one multi-get at the top, one batch lookup per tier
// below, and one Load call per batch for the rest, joining keys other
// callers are already looking up. The read path is load.go.
//
// The source is protected: at most WithLoadConcurrency loads run at once,
// each bounded by WithLoadTimeout, and a breaker (WithBreaker) stops asking
// a source that keeps failing (see source.go).
//
// # Rules
//
// Values travel with their absolute expiry (Entry.Expires), so a value
// copied from a lower tier keeps the time it has left instead of a fresh
// TTL.
//
// Backfill never overwrites newer data. It adds rather than sets in tiers
// that can (memcached), and an invalidation by Set or Delete that happens
// while a load is in flight wins in every tier: the late load does not put
// the old value back.
//
// A broken upper tier is a miss, not an error: memcached down or slow costs
// a lookup in the tier below, never a failed Get. Only the source failing is
// an error, and then WithStaleIfError may allow a recently expired copy.
//
// Callers keep their own context. A load runs on a context of its own; a
// caller whose context ends stops waiting without failing the others, and
// the load goes on, up to the load timeout, for the next caller to join. A
// caller whose context is already done returns before any I/O.
//
// # Many processes
//
// Singleflight and invalidation ordering hold within one process. With
// WithLeases they hold across the processes sharing a memcached too: one
// load per key among all of them, invalidations that void the loads in
// flight everywhere, and markers that keep each process's durable copies
// from outliving another process's Delete (see lease.go and
// docs/consistency.md, which says which failures break it).
// WithEarlyRefresh, WithStaleWhileRevalidate and WithTTLJitter take the
// cliff out of expiry (see refresh.go and jitter.go).
//
// # Cold start
//
// Warmup copies the durable tier into the tiers above it: after a memcached
// restart the working set comes back from local disk, not from the
// database. It adds (never overwriting live writes), keeps each entry's
// remaining TTL, skips expired and negative entries and keys invalidated
// since it began, reads the durable tier most recently used first when it
// can (HotScanner), and streams into a top tier that adds in bulk
// (BulkAdder: memcached's pipelined meta protocol). WithWarmupRate paces
// it; WithWarmupProgress and Stats().Warmup report its progress.
//
// WithAutoWarmup does it by itself: when the top tier reports that one of
// its servers restarted or was flushed (RestartWatcher; memcached with
// WithRestartDetection), the chain warms exactly the keys placed on that
// server, on a goroutine Close stops.
//
// # Caveats
//
// Without WithLeases, several processes sharing a memcached each load a
// cold key once, and one process's Delete cannot reach another's durable
// tier.
//
// GetMulti returns every value it could find even when it also returns an
// error describing the keys it could not serve.
package tier
