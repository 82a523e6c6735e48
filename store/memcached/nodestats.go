package memcached

import (
	"sync/atomic"

	"github.com/tiercache/tiercache/tier"
)

var _ tier.NodeReporter = (*Tier)(nil)

// nodeCounters are one node's counts, reported by NodeStats.
type nodeCounters struct {
	requests              atomic.Int64 // commands sent (a multi-get is one)
	hits                  atomic.Int64 // keys found
	misses                atomic.Int64 // keys not found, or lost to a failed command
	errors                atomic.Int64 // commands that failed
	timeouts              atomic.Int64 // the part of errors that were timeouts
	skipped               atomic.Int64 // commands not sent because the node was down
	ejections             atomic.Int64 // times the node was marked down
	ejectedAt             atomic.Int64 // Unix microseconds of the last ejection; 0 if never
	probes                atomic.Int64 // probes of the node while it was down
	probeFailures         atomic.Int64 // the probes that left it down
	replayedInvalidations atomic.Int64 // missed Sets and Deletes replayed as deletes
	lostInvalidations     atomic.Int64 // missed ones beyond what the node remembers
}

// NodeStats implements tier.NodeReporter: one entry per server of the
// current membership, in the order configured or discovered. Name is the
// server's name, or its address when it has none; State is "up", "down"
// or "probing". The counters are:
//
//	requests                commands sent to the node; a multi-get is one
//	hits, misses            keys found and not found there (the keys of a
//	                        failed command count as misses)
//	errors                  commands that failed
//	timeouts                the errors that were timeouts
//	skipped                 commands answered at once, without touching the
//	                        network, because the node was down
//	ejections               times the node was marked down
//	ejected_at              when it last was, in Unix microseconds (as
//	                        twemproxy's server_ejected_at); 0 if never
//	probes, probe_failures  probes while it was down, and the failed ones
//	connections             connections open to it now
//	pending_invalidations   keys it missed a Set or Delete of, to be deleted
//	                        before it takes traffic again
//	replayed_invalidations  such keys deleted by a probe
//	lost_invalidations      such keys it could not remember (the limit is
//	                        10000); their old values live until they expire
//	lease_protocol_meta, lease_protocol_classic
//	                        1 for the protocol its leases and bulk adds
//	                        use, once known (see WithLeaseProtocol)
//
// The counters of a node last as long as its address stays in the
// cluster; a node that leaves and returns starts from zero.
func (t *Tier) NodeStats() []tier.NodeStats {
	c := t.members.current.Load()
	out := make([]tier.NodeStats, 0, len(c.members))
	for _, m := range c.members {
		n := m.node
		name := m.server.Name
		if name == "" {
			name = m.server.Addr
		}
		ns := tier.NodeStats{
			Name:  name,
			Addr:  m.server.Addr,
			State: n.currentState().String(),
			Counters: map[string]int64{
				"requests":               n.stats.requests.Load(),
				"hits":                   n.stats.hits.Load(),
				"misses":                 n.stats.misses.Load(),
				"errors":                 n.stats.errors.Load(),
				"timeouts":               n.stats.timeouts.Load(),
				"skipped":                n.stats.skipped.Load(),
				"ejections":              n.stats.ejections.Load(),
				"ejected_at":             n.stats.ejectedAt.Load(),
				"probes":                 n.stats.probes.Load(),
				"probe_failures":         n.stats.probeFailures.Load(),
				"connections":            int64(n.pool.Stats().Open),
				"dials":                  n.pool.Stats().Dials,
				"pending_invalidations":  int64(n.pendingCount()),
				"replayed_invalidations": n.stats.replayedInvalidations.Load(),
				"lost_invalidations":     n.stats.lostInvalidations.Load(),
			},
		}
		t.addProtocolCounters(ns.Counters, n)
		out = append(out, ns)
	}
	return out
}
