package memcached

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mcwire "github.com/tiercache/tiercache/store/memcached/internal/wire"
	"github.com/tiercache/tiercache/tier"
)

// Restart detection.
//
// With WithRestartDetection the Tier checks every node at an interval, with
// one request on the node's pool:
//
//	stats                                  pid, uptime, time
//	mg <sentinel> T<ttl>                   HD: the sentinel is there (and its TTL renewed); EN: gone
//	ms <sentinel> 1 T<ttl> ME  1           add it back if it is gone
//
// A node restarted when its pid changed or its start time (time - uptime,
// which memcached keeps constant for the life of a process) moved: a new
// process, its items gone. It was flushed when the process is the same but
// the sentinel, a key this Tier keeps on every node, vanished. Each is
// reported once on Restarts, as a tier.Restart whose Owns selects the keys
// placed on the node.
//
// The first successful check of a node only records what it finds: an empty
// node at startup is a cold cache, which Warmup is for, not a restart. A
// node that cannot be reached keeps what was last recorded, so a node that
// comes back as a new process after being down is reported then. A node
// the health checks still hold down (it failed while it restarted) is
// probed at once instead of at the end of its retry timeout, and its
// restart is reported once it is back in service: a warmup sent to a node
// that is down would only be skipped.
//
// The sentinel's key is prefix + "~h:restart-sentinel:" + 16 random hex
// digits, one per Tier. No caller key is ever sent in that form (hashed
// keys are exactly 43 base64url characters after "~h:"), and its TTL,
// renewed at every check, lets it expire once this process is gone. An
// item this small, read at every check, is not what memcached's LRU
// evicts; if it were, the cost is one needless warmup, which adds nothing
// that is already there.
//
// The nodes watched are the current membership's (watchedNodes), read
// afresh at every check: nodes that discovery adds are watched from the
// next check on, and those it removes are forgotten.

// restartEvents is how many reports Restarts holds for a reader that is
// late; beyond that they are dropped and counted.
const restartEvents = 64

// WithRestartDetection makes the Tier check every interval whether a node
// restarted or was flushed while this process kept running, and report it
// on Restarts (see tier.RestartWatcher and tier.WithAutoWarmup). The checks
// run on a goroutine the Tier owns until Close; Counters shows them.
// interval must be positive; a second or a few is typical.
func WithRestartDetection(interval time.Duration) Option {
	return func(c *config) error {
		if interval <= 0 {
			return fmt.Errorf("%w: restart detection interval %v, must be positive", ErrInvalidOption, interval)
		}
		c.restartInterval = interval
		return nil
	}
}

var _ tier.RestartWatcher = (*Tier)(nil)

// Restarts implements tier.RestartWatcher: it returns the channel restarts
// and flushes are reported on, nil without WithRestartDetection. Close
// closes it.
func (t *Tier) Restarts() <-chan tier.Restart {
	if t.cold.detector == nil {
		return nil
	}
	return t.cold.detector.events
}

// restartDetector runs the checks. Its nodes map belongs to its goroutine.
type restartDetector struct {
	t           *Tier
	interval    time.Duration
	sentinel    string
	sentinelTTL int64 // seconds
	events      chan tier.Restart
	nodes       map[string]*nodeWatch

	checks, checkErrors, restarts, flushes, dropped, panics atomic.Int64
}

// nodeWatch is what the detector knows of one node.
type nodeWatch struct {
	node *node

	known   bool // a check has succeeded: pid and started are the node's
	pid     int64
	started int64 // Unix seconds, the server's time less its uptime
	uptime  int64
	// unreported is the reason of a restart noticed while the node was
	// still down, to report once it is back in service.
	unreported string
}

// serverIncarnation is what one check found.
type serverIncarnation struct {
	pid, started, uptime int64
	sentinel             bool // the sentinel was there
}

// startRestartDetection starts the detector on one of the Tier's
// background goroutines, which Close stops.
func (t *Tier) startRestartDetection(interval time.Duration) {
	var id [8]byte
	_, _ = rand.Read(id[:]) // crypto/rand does not fail on supported systems
	d := &restartDetector{
		t:           t,
		interval:    interval,
		sentinel:    t.keys.prefix + hashedMarker + "restart-sentinel:" + hex.EncodeToString(id[:]),
		sentinelTTL: int64(min(max(time.Hour, 10*interval), maxRelativeExpiration*time.Second) / time.Second),
		events:      make(chan tier.Restart, restartEvents),
		nodes:       make(map[string]*nodeWatch),
	}
	t.cold.detector = d
	t.bg.Add(1)
	go d.run()
}

func (d *restartDetector) run() {
	defer d.t.bg.Done()
	defer close(d.events)
	tick := time.NewTicker(d.interval)
	defer tick.Stop()
	for {
		d.checkAllGuarded()
		select {
		case <-d.t.bgCtx.Done():
			return
		case <-tick.C:
		}
	}
}

// checkAllGuarded runs one round of checks, recovering a panic so that one
// bad round does not end detection for the life of the Tier.
func (d *restartDetector) checkAllGuarded() {
	defer func() {
		if recover() != nil {
			d.panics.Add(1)
		}
	}()
	d.checkAll()
}

// checkAll checks every node at once and reports what changed.
func (d *restartDetector) checkAll() {
	nodes := d.t.watchedNodes()
	current := make(map[string]bool, len(nodes))
	watches := make([]*nodeWatch, 0, len(nodes))
	for _, nd := range nodes {
		current[nd.key] = true
		n := d.nodes[nd.key]
		if n == nil || n.node != nd {
			n = &nodeWatch{node: nd}
			d.nodes[nd.key] = n
		}
		watches = append(watches, n)
	}
	for name := range d.nodes {
		if !current[name] {
			delete(d.nodes, name)
		}
	}
	reasons := make([]string, len(watches))
	var wg sync.WaitGroup
	for i, n := range watches {
		wg.Go(func() { reasons[i] = d.checkNode(n) })
	}
	wg.Wait()
	for i, n := range watches {
		if reasons[i] != "" {
			n.unreported = reasons[i]
		}
		if n.unreported == "" {
			continue
		}
		if !n.node.isUp() {
			d.t.probeSoon(n.node)
			continue
		}
		d.report(n, n.unreported, len(watches) == 1)
		n.unreported = ""
	}
}

// checkNode checks one node and returns "restarted", "flushed" or "".
func (d *restartDetector) checkNode(n *nodeWatch) string {
	st, err := d.inspect(n)
	if err != nil {
		d.checks.Add(1)
		d.checkErrors.Add(1)
		return ""
	}
	// A successful check counts once its baseline is recorded, so that
	// checks > errors means the node has one.
	defer d.checks.Add(1)
	reason := ""
	switch {
	case !n.known:
	case st.pid != n.pid || st.started != n.started || st.uptime < n.uptime:
		reason = "restarted"
		d.restarts.Add(1)
	case !st.sentinel:
		reason = "flushed"
		d.flushes.Add(1)
	}
	n.known, n.pid, n.started, n.uptime = true, st.pid, st.started, st.uptime
	return reason
}

// report sends a restart on the events channel, or counts it dropped when
// nobody has read the last restartEvents.
func (d *restartDetector) report(n *nodeWatch, reason string, single bool) {
	r := tier.Restart{Node: n.node.key, Reason: reason}
	if !single {
		r.Owns = d.t.placedOn(r.Node)
	}
	select {
	case d.events <- r:
	default:
		d.dropped.Add(1)
	}
}

// inspect asks n for its pid, uptime and time and for the sentinel, and puts
// the sentinel back when it is gone, in one round trip on the node's pool.
// The check is a probe: it reaches a node marked down, and its outcome is
// not counted against the node's health.
func (d *restartDetector) inspect(n *nodeWatch) (serverIncarnation, error) {
	ttl := strconv.FormatInt(d.sentinelTTL, 10)
	req := "stats\r\nmg " + d.sentinel + " T" + ttl + "\r\nms " + d.sentinel + " 1 T" + ttl + " ME\r\n1\r\n"
	var st serverIncarnation
	read := func(r *mcwire.Reader) error {
		var serverTime int64
		for {
			rep, err := r.Next()
			if err != nil {
				return err
			}
			if rep.Code == "END" {
				break
			}
			if rep.Code != "STAT" {
				return fmt.Errorf("stats: unexpected reply %s", rep.Code)
			}
			switch rep.Key {
			case "pid":
				st.pid, err = strconv.ParseInt(string(rep.Value), 10, 64)
			case "uptime":
				st.uptime, err = strconv.ParseInt(string(rep.Value), 10, 64)
			case "time":
				serverTime, err = strconv.ParseInt(string(rep.Value), 10, 64)
			}
			if err != nil {
				return fmt.Errorf("stats: %s: %w", rep.Key, err)
			}
		}
		st.started = serverTime - st.uptime
		get, err := r.Next()
		if err != nil {
			return err
		}
		switch get.Code {
		case "HD":
			st.sentinel = true
		case "EN":
		default:
			return fmt.Errorf("mg sentinel: unexpected reply %s", get.Code)
		}
		add, err := r.Next()
		if err != nil {
			return err
		}
		if add.Code != "HD" && add.Code != "NS" {
			return fmt.Errorf("ms sentinel: unexpected reply %s", add.Code)
		}
		return nil
	}
	if err := n.node.pool.Do(d.t.bgCtx, &mcwire.Request{Buf: []byte(req), Read: read, Probe: true}); err != nil {
		return serverIncarnation{}, err // read may still run: st is not ours
	}
	return st, nil
}
