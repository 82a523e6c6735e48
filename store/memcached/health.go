package memcached

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mcwire "github.com/tiercache/tiercache/store/memcached/internal/wire"
	"github.com/tiercache/tiercache/tier"
)

// Node health.
//
// A node that fails failureLimit requests in a row is marked down. Only
// the node's own failures count, as its pool (package wire) reports them:
// a dial refused or timed out, a write that failed, a reply that did not
// come within the timeout of the node's last progress, or did not parse.
// Misses, "not stored", a SERVER_ERROR all prove the node alive; time a
// caller spent waiting for room on the node's connections, a caller giving
// up, and requests lost behind another's failure are not the node's doing.
// While it is down every operation on its keys returns ErrNodeDown at
// once, without touching the network, and the chain answers from the tier
// below.
//
// The Tier's health goroutine probes a down node with "version" after
// probeInterval (a second), and again every probeInterval while it stays
// silent, so a node that answers again is back in service within about a
// second. A node that answers a probe but fails again at once (it keeps
// timing out under load, say) is held out for longer each time, doubling
// up to retryTimeout. Callers never pay for a probe.
//
// With a single node, down means every operation is a miss answered by
// the tier below (or the source) until the probe, a second later, finds it
// back; nothing waits on the dead node meanwhile.
//
// A down node misses invalidations: a Set or Delete of one of its keys
// cannot reach it, and when it returns it would serve the old value. So
// the node remembers the keys (up to maxPendingInvalidations) whose Set or
// Delete it missed, and the probe deletes them before the node takes
// traffic again. Keys beyond the limit are counted as lost_invalidations;
// their old values live until they expire.
//
// With auto-eject, the placement is rebuilt without the down nodes, so
// their keys go to substitutes, as twemproxy's auto_eject_hosts does; the
// values written to a substitute get a TTL of at most ejectedTTLCap, so
// that the copies left behind when the node returns expire soon.

const (
	// DefaultFailureLimit is how many consecutive failures mark a node
	// down: twemproxy's server_failure_limit default.
	DefaultFailureLimit = 2

	// DefaultRetryTimeout is the longest a node that keeps failing right
	// after it returns is held out between probes: twemproxy's
	// server_retry_timeout default. A node is first probed after
	// probeInterval.
	DefaultRetryTimeout = 30 * time.Second

	// probeInterval is how soon a node marked down is first probed, and
	// how often while it stays silent.
	probeInterval = time.Second

	// DefaultEjectedTTLCap bounds the TTL of values written to a
	// substitute node while auto-eject has a node out of the placement.
	DefaultEjectedTTLCap = 10 * time.Second

	// maxPendingInvalidations bounds the keys a down node remembers to
	// delete when it returns.
	maxPendingInvalidations = 10000

	// replayBatch is how many deletes a probe pipelines per round trip.
	replayBatch = 100
)

// WithFailureLimit sets how many consecutive failures mark a node down
// (see DefaultFailureLimit). n must be at least 1.
func WithFailureLimit(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 1<<30 {
			return fmt.Errorf("%w: failure limit %d, must be at least 1", ErrInvalidOption, n)
		}
		c.failureLimit = int32(n)
		return nil
	}
}

// WithRetryTimeout sets the longest a node that keeps failing as soon as
// it returns is held out between probes (see DefaultRetryTimeout); a node
// just marked down is probed after a second, or after d if shorter. d
// must be positive.
func WithRetryTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: retry timeout %v, must be positive", ErrInvalidOption, d)
		}
		c.retryTimeout = d
		return nil
	}
}

// WithAutoEject, when on, moves the keys of a down node to the other
// nodes until it returns, as twemproxy's auto_eject_hosts does, instead of
// answering them as misses. Values written to a substitute node get a TTL
// of at most the ejected TTL cap (see WithEjectedTTLCap). Off by default:
// rehashing leaves stale copies behind on the substitutes when the node
// returns, and with ketama a down node costs only its own share of hits
// anyway. It cannot be combined with WithSelector, whose placement the
// Tier cannot rebuild.
func WithAutoEject(on bool) Option {
	return func(c *config) error {
		c.autoEject = on
		return nil
	}
}

// WithEjectedTTLCap sets the longest TTL a value written to a substitute
// node gets while auto-eject has a node out (see DefaultEjectedTTLCap).
// d must be at least a second, memcached's resolution.
func WithEjectedTTLCap(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Second {
			return fmt.Errorf("%w: ejected TTL cap %v, must be at least 1s", ErrInvalidOption, d)
		}
		c.ejectedTTLCap = d
		return nil
	}
}

// healthState is where a node is in its health cycle.
type healthState int32

const (
	stateUp      healthState = iota // in service
	stateDown                       // failed; skipped until retryAt
	stateProbing                    // being probed by the health goroutine
)

func (s healthState) String() string {
	switch s {
	case stateUp:
		return "up"
	case stateDown:
		return "down"
	default:
		return "probing"
	}
}

// health is a node's state. The operations read state with one atomic
// load; every change of state happens under mu, together with the
// pending invalidations, so that a write skipped because the node is down
// is never lost by a probe that returns the node to service at that very
// moment (see skipWrite and takePending).
type health struct {
	state    atomic.Int32 // a healthState
	failures atomic.Int32 // consecutive failures
	retryAt  atomic.Int64 // Unix nanoseconds after which a down node is probed
	// holdOut is how long the node is held down before its next probe; it
	// doubles, up to the retry timeout, when the node fails again right
	// after a probe returned it, and starts again at probeInterval once
	// it has stayed up.
	holdOut atomic.Int64
	upSince atomic.Int64 // Unix nanoseconds the node last returned to service

	mu      sync.Mutex
	pending map[string]struct{} // wire keys whose invalidation the node missed
}

func (h *health) currentState() healthState { return healthState(h.state.Load()) }
func (h *health) isUp() bool                { return h.currentState() == stateUp }

// succeeded records an answer from n.
func (n *node) succeeded() {
	if n.failures.Load() != 0 {
		n.failures.Store(0)
	}
}

// observe updates n's health after its pool saw an answer (err nil) or a
// failure of the node's own (see the top of the file).
func (t *Tier) observe(n *node, err error) {
	switch {
	case err == nil:
		n.succeeded()
	case t.closed.Load():
		// Our own doing, not the node's.
	default:
		if n.failures.Add(1) >= t.cfg.failureLimit {
			t.markDown(n)
		}
	}
}

// markDown takes n out of service until the retry timeout has passed.
func (t *Tier) markDown(n *node) {
	n.mu.Lock()
	if n.currentState() != stateUp {
		n.mu.Unlock()
		return
	}
	now := time.Now()
	n.retryAt.Store(now.Add(t.nextHoldOut(n, now)).UnixNano())
	n.stats.ejectedAt.Store(now.UnixMicro())
	n.state.Store(int32(stateDown))
	n.mu.Unlock()
	n.stats.ejections.Add(1)
	t.stats.ejections.Add(1)
	t.wakeHealth()
}

// nextHoldOut is how long n, going down at now, stays down before it is
// probed: probeInterval (or the retry timeout, if shorter), doubled for
// each time in a row the node failed again within a retry timeout of
// returning.
func (t *Tier) nextHoldOut(n *node, now time.Time) time.Duration {
	first := min(probeInterval, t.cfg.retryTimeout)
	d := time.Duration(n.holdOut.Load())
	if d == 0 || now.Sub(time.Unix(0, n.upSince.Load())) > t.cfg.retryTimeout {
		d = first
	} else {
		d = min(2*d, t.cfg.retryTimeout)
	}
	n.holdOut.Store(int64(d))
	return d
}

// skipWrite reports whether a Set or Delete of wire must not be sent to n
// because n is not up; it then remembers wire for the probe to delete.
// The common case, an up node, costs one atomic load.
func (n *node) skipWrite(wire string) bool {
	if n.isUp() {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.currentState() == stateUp {
		return false // returned to service meanwhile: send it
	}
	n.rememberLocked(wire)
	return true
}

// remember records that the Set or Delete of wire failed on n, whatever
// its state, so that the next probe deletes it.
func (n *node) remember(wire string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rememberLocked(wire)
}

// forget records that an invalidation of wire has just landed on n: a
// replay of an older, failed one must not follow it, or it would delete
// what this one wrote (a lease marker, a newer value).
func (n *node) forget(wire string) {
	n.mu.Lock()
	if len(n.pending) > 0 {
		delete(n.pending, wire)
	}
	n.mu.Unlock()
}

func (n *node) rememberLocked(wire string) {
	if n.pending == nil {
		n.pending = make(map[string]struct{})
	}
	if _, ok := n.pending[wire]; ok {
		return
	}
	if len(n.pending) >= maxPendingInvalidations {
		n.stats.lostInvalidations.Add(1)
		return
	}
	n.pending[wire] = struct{}{}
}

func (n *node) pendingCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.pending)
}

// startProbe moves a down node whose retry time has come to probing. It
// returns false, and the time the node is due, otherwise.
func (n *node) startProbe(now time.Time) (due time.Time, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.currentState() != stateDown {
		return time.Time{}, false
	}
	due = time.Unix(0, n.retryAt.Load())
	if now.Before(due) {
		return due, false
	}
	n.state.Store(int32(stateProbing))
	return time.Time{}, true
}

// takePending hands the probe the invalidations to replay. When there are
// none left it returns the node to service, in the same critical section,
// so that no write can be skipped in between.
func (n *node) takePending() (keys []string, up bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.pending) == 0 {
		n.failures.Store(0)
		n.upSince.Store(time.Now().UnixNano())
		n.state.Store(int32(stateUp))
		return nil, true
	}
	keys = make([]string, 0, len(n.pending))
	for k := range n.pending {
		keys = append(keys, k)
	}
	clear(n.pending)
	return keys, false
}

// probeFailed puts a probed node back down for another retry timeout, with
// the invalidations it has not replayed.
func (t *Tier) probeFailed(n *node, unreplayed []string) {
	n.mu.Lock()
	for _, k := range unreplayed {
		n.rememberLocked(k)
	}
	n.retryAt.Store(time.Now().Add(min(probeInterval, t.cfg.retryTimeout)).UnixNano())
	n.state.Store(int32(stateDown))
	n.mu.Unlock()
	n.stats.probeFailures.Add(1)
}

// probe tries a node whose retry time has come: it returns the node to
// service when it answers, after deleting the keys it missed, and puts it
// back down otherwise. Its requests go through the node's pool as probes:
// past the gate that holds the node's traffic, and not counted against
// its health.
func (t *Tier) probe(n *node) {
	n.stats.probes.Add(1)
	version := &mcwire.Request{Buf: []byte("version\r\n"), Probe: true, Read: func(r *mcwire.Reader) error {
		rep, err := r.Next()
		if err == nil && rep.Code != "VERSION" {
			err = fmt.Errorf("%w: %s to version", mcwire.ErrProtocol, rep.Code)
		}
		return err
	}}
	if n.pool.Do(t.bgCtx, version) != nil {
		t.probeFailed(n, nil)
		return
	}
	for {
		keys, up := n.takePending()
		if up {
			return
		}
		for start := 0; start < len(keys); start += replayBatch {
			batch := keys[start:min(start+replayBatch, len(keys))]
			if t.replay(n, batch) != nil {
				t.probeFailed(n, keys[start:])
				return
			}
			n.stats.replayedInvalidations.Add(int64(len(batch)))
		}
	}
}

// replay deletes keys on n, pipelined in one request.
func (t *Tier) replay(n *node, keys []string) error {
	var buf []byte
	for _, k := range keys {
		buf = mcwire.AppendDelete(buf, k)
	}
	return n.pool.Do(t.bgCtx, &mcwire.Request{Buf: buf, Probe: true, Read: func(r *mcwire.Reader) error {
		for range keys {
			rep, err := r.Next()
			if err != nil {
				return err
			}
			if rep.Code != "DELETED" && rep.Code != "NOT_FOUND" {
				return fmt.Errorf("%w: %s to delete", mcwire.ErrProtocol, rep.Code)
			}
		}
		return nil
	}})
}

// wakeHealth tells the health goroutine that a node went down.
func (t *Tier) wakeHealth() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// healthLoop is the Tier's health goroutine: it probes the down nodes when
// their retry time comes and, with auto-eject, keeps the placement in step
// with the nodes' states. Close stops it.
func (t *Tier) healthLoop() {
	defer t.bg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var next time.Time
		t.guard(func() { next = t.checkHealth() })
		var due <-chan time.Time
		if !next.IsZero() {
			timer.Reset(time.Until(next))
			due = timer.C
		}
		select {
		case <-t.bgCtx.Done():
			return
		case <-t.wake:
		case <-due:
		}
	}
}

// checkHealth probes the nodes that are due and returns when the next one
// will be, or the zero time when no node is down and the placement is in
// step.
func (t *Tier) checkHealth() time.Time {
	t.syncPlacement()
	var next time.Time
	for _, n := range t.members.current.Load().nodes() {
		if t.bgCtx.Err() != nil {
			return time.Time{}
		}
		due, ok := n.startProbe(time.Now())
		if ok {
			t.probe(n)
			if n.currentState() == stateDown {
				due = time.Unix(0, n.retryAt.Load())
			}
		}
		if !due.IsZero() && (next.IsZero() || due.Before(next)) {
			next = due
		}
	}
	if !t.syncPlacement() {
		// A host name did not resolve: try again soon.
		if retry := time.Now().Add(time.Second); next.IsZero() || retry.Before(next) {
			next = retry
		}
	}
	return next
}

// syncPlacement, with auto-eject on, rebuilds the placement when the set
// of down nodes changed. It reports whether the placement is in step.
func (t *Tier) syncPlacement() bool {
	if !t.cfg.autoEject {
		return true
	}
	if err := t.reeject(); err != nil {
		t.stats.placementErrors.Add(1)
		return false
	}
	return true
}

// guard runs one round of a background goroutine, turning a panic into a
// count, so that the goroutine lives on.
func (t *Tier) guard(f func()) {
	defer func() {
		if recover() != nil {
			t.stats.backgroundPanics.Add(1)
		}
	}()
	f()
}

// capTTL shortens e's life to the ejected TTL cap, for a value written to
// a substitute node.
func (t *Tier) capTTL(e tier.Entry, now time.Time) tier.Entry {
	limit := now.Add(t.cfg.ejectedTTLCap)
	if e.Expires.IsZero() || e.Expires.After(limit) {
		e.Expires = limit
		t.stats.ttlCapped.Add(1)
	}
	return e
}
