// Package memory is the in-process tier of a tiercache chain: the level
// above memcached that answers hot keys without a network round trip.
//
// It is built on github.com/maypok86/otter/v2, a W-TinyLFU cache whose
// reads take no lock, and adds what a tier needs beyond a map: entries
// keep their absolute expiry, the tier's own TTL caps how long any entry
// is kept, a byte bound (and optionally an entry bound) keeps it from
// growing, and values are copied in and out so that callers cannot change
// what others read.
//
// # Basics
//
//	mem, err := memory.New(memory.WithMaxBytes(256<<20), memory.WithTTL(time.Second))
//	...
//	cache, err := tier.New(src,
//		tier.WithTier(mem, 10*time.Minute), // the TTL of the tier below: see Caveats
//		tier.WithTier(mc, 10*time.Minute),
//		tier.WithTier(disk, 24*time.Hour))
//
// A *Tier implements tier.Tier, tier.Adder (backfill never overwrites a
// newer value), tier.MultiGetter, tier.Sized and tier.Counter. It fits
// anywhere in a chain, and normally goes on top.
//
// An entry is kept until its expiry (Entry.Expires: a copy backfilled from
// memcached keeps the time it has left there, so it never outlives the copy
// below it) or for the TTL of WithTTL after it was stored, whichever comes
// first. Negative entries are kept like any other. A Get returns the entry
// with its expiry unchanged: only how long the tier keeps it is shortened.
//
// # Caveats
//
// Give the chain (tier.WithTier) the same TTL for this tier as for the tier
// below it, and bound how long this process keeps values with WithTTL. The
// chain's TTL is how long a value is valid, and the entries of this tier
// then carry the expiry of the copy below, which early refresh needs: a
// shorter chain TTL here would make early refresh reload hot keys from the
// source every time their copy in memory is about to go.
//
// Set and Delete through the chain reach this tier at once, so this
// process never reads a value its own Delete removed. Another process's
// Delete cannot reach it: a value changed elsewhere may be served from
// here until this tier's TTL has passed (docs/consistency.md).
//
// With WithLeases, leases stay with the memcached tier; this tier takes no
// part in them.
package memory
