package memcached

import (
	"sync/atomic"
	"time"
)

// coldStart is the Tier's part in bringing a node back after a restart:
// the restart detector (restart.go) and the bulk writer's counters
// (pipeline.go).
type coldStart struct {
	detector *restartDetector // nil without WithRestartDetection

	bulkSent    atomic.Int64 // commands written by AddBulk
	bulkBatches atomic.Int64 // batches written by AddBulk (one mn each, on meta)
}

// addCounters adds the counters of restart detection and bulk adds to m,
// under the names Counters documents.
func (c *coldStart) addCounters(m map[string]int64) {
	m["bulk_sent"] = c.bulkSent.Load()
	m["bulk_batches"] = c.bulkBatches.Load()
	d := c.detector
	if d == nil {
		d = &restartDetector{}
	}
	m["restart_checks"] = d.checks.Load()
	m["restart_check_errors"] = d.checkErrors.Load()
	m["restarts_detected"] = d.restarts.Load()
	m["flushes_detected"] = d.flushes.Load()
	m["restarts_dropped"] = d.dropped.Load()
	m["restart_panics"] = d.panics.Load()
}

// What restart detection and bulk adds need from the membership
// (cluster.go) and node health (health.go), in one place.

// watchedNodes returns the nodes of the current membership: the servers
// given to New, or those discovery found last.
func (t *Tier) watchedNodes() []*node { return t.members.current.Load().nodes() }

// placedOn returns a func that reports whether node is the home of key,
// the node key belongs to when every node is up, as the membership stands
// when the func is called.
func (t *Tier) placedOn(node string) func(string) bool {
	return func(key string) bool {
		wire, _ := t.keys.encode(key)
		r, err := t.route(wire)
		return err == nil && r.home.key == node
	}
}

// probeSoon asks the health goroutine to probe n, which is down, now
// rather than when its retry timeout ends: restart detection has just had
// an answer from it.
func (t *Tier) probeSoon(n *node) {
	n.mu.Lock()
	if n.currentState() == stateDown {
		n.retryAt.Store(time.Now().UnixNano())
	}
	n.mu.Unlock()
	t.wakeHealth()
}
