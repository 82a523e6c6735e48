package memcached

import "sync/atomic"

// counters are the Tier's own counts, reported by Counters. They are
// atomics so that the read path never takes a lock to count.
type counters struct {
	hits           atomic.Int64 // keys found and decoded, by Get and GetMulti
	misses         atomic.Int64 // keys not found, including decode failures
	errors         atomic.Int64 // operations that failed to talk to memcached
	timeouts       atomic.Int64 // the part of errors that were timeouts
	tooLarge       atomic.Int64 // Set/Add refused for size, here or by the server
	decodeErrors   atomic.Int64 // items found but not readable as an entry
	encodedKeys    atomic.Int64 // keys sent hashed instead of as they are
	notStored      atomic.Int64 // Add that found the key present
	expiredSkipped atomic.Int64 // Set/Add of an entry already expired

	nodeDown         atomic.Int64 // operations answered at once: node down, or no node
	ejections        atomic.Int64 // nodes marked down
	ttlCapped        atomic.Int64 // writes to a substitute node whose TTL was cut
	placementErrors  atomic.Int64 // auto-eject placements that could not be rebuilt
	backgroundPanics atomic.Int64 // panics recovered in the background goroutines

	discoveryPolls   atomic.Int64 // configuration endpoint queries
	discoveryErrors  atomic.Int64 // queries that failed or gave an unusable list
	discoveryUpdates atomic.Int64 // new server lists put in place
	discoveryVersion atomic.Int64 // version of the list in place; -1 before the first
}

// snapshot returns the counters by the names Counters documents.
func (c *counters) snapshot() map[string]int64 {
	return map[string]int64{
		"hits":              c.hits.Load(),
		"misses":            c.misses.Load(),
		"errors":            c.errors.Load(),
		"timeouts":          c.timeouts.Load(),
		"too_large":         c.tooLarge.Load(),
		"decode_errors":     c.decodeErrors.Load(),
		"encoded_keys":      c.encodedKeys.Load(),
		"not_stored":        c.notStored.Load(),
		"expired_skipped":   c.expiredSkipped.Load(),
		"node_down":         c.nodeDown.Load(),
		"ejections":         c.ejections.Load(),
		"ttl_capped":        c.ttlCapped.Load(),
		"placement_errors":  c.placementErrors.Load(),
		"background_panics": c.backgroundPanics.Load(),
	}
}

// discoverySnapshot adds the discovery counters to m.
func (c *counters) discoverySnapshot(m map[string]int64) {
	m["discovery_polls"] = c.discoveryPolls.Load()
	m["discovery_errors"] = c.discoveryErrors.Load()
	m["discovery_updates"] = c.discoveryUpdates.Load()
	m["discovery_version"] = c.discoveryVersion.Load()
}
