package memcached

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	mcwire "github.com/tiercache/tiercache/store/memcached/internal/wire"
	"github.com/tiercache/tiercache/tier"
)

// Tier is the memcached level of a tiercache chain. It is safe for
// concurrent use.
//
// Every key is accepted (see the key encoding in key.go); every failure to
// reach a node comes back as an error wrapping ErrUnavailable, which the
// chain counts and treats as a miss. The Tier's background goroutines
// (the health prober, and the discovery poller with WithDiscovery) are
// stopped by Close.
type Tier struct {
	cfg     config
	keys    keyCodec
	members membership
	clock   tier.Clock // cfg.clock

	bgCtx  context.Context // ends when Close begins
	stopBG context.CancelFunc
	bg     sync.WaitGroup
	wake   chan struct{} // a node went down

	closed atomic.Bool
	stats  counters
	cold   coldStart // restart detection and bulk adds (coldstart.go)
	lease  leaseCounters
}

var (
	_ tier.Tier        = (*Tier)(nil)
	_ tier.Adder       = (*Tier)(nil)
	_ tier.MultiGetter = (*Tier)(nil)
	_ tier.Counter     = (*Tier)(nil)
)

// New returns a Tier over servers, each in nutcracker.yml's form
// "host:port[:weight] [name]" (see ParseServer). At least one server is
// required unless WithSelector supplies the placement or WithDiscovery
// finds the servers. New resolves the addresses but does not connect to
// them: a node that is down shows up as ErrUnavailable from the
// operations, not as an error here. With WithDiscovery, New asks the
// configuration endpoint once (see WithDiscoveryRetry).
func New(servers []string, opts ...Option) (*Tier, error) {
	cfg := defaultConfig()
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	parsed, err := parseServers(servers)
	if err != nil {
		return nil, err
	}
	if err := checkConfig(cfg, parsed); err != nil {
		return nil, err
	}
	t := &Tier{
		cfg:   cfg,
		keys:  keyCodec{prefix: cfg.keyPrefix},
		clock: cfg.clock,
		wake:  make(chan struct{}, 1),
	}
	t.bgCtx, t.stopBG = context.WithCancel(context.Background())
	t.stats.discoveryVersion.Store(-1)
	if err := t.setServers(parsed); err != nil {
		t.stopBG()
		return nil, err
	}
	if cfg.discovery != nil {
		if err := t.discover(t.bgCtx); err != nil && !cfg.discovery.retry {
			t.Close()
			return nil, err
		}
		t.bg.Add(1)
		go t.discoveryLoop()
	}
	t.bg.Add(1)
	go t.healthLoop()
	if cfg.restartInterval > 0 {
		t.startRestartDetection(cfg.restartInterval)
	}
	return t, nil
}

// checkConfig refuses option combinations that cannot work.
func checkConfig(cfg config, servers []Server) error {
	custom := cfg.selector != nil
	switch {
	case custom && len(servers) > 0:
		return fmt.Errorf("%w: WithSelector replaces the server list; pass no servers", ErrInvalidOption)
	case custom && (cfg.hash != "" || cfg.distribution != "" || cfg.hashTag != ""):
		return fmt.Errorf("%w: WithSelector cannot be combined with WithHash, WithDistribution or WithHashTag", ErrInvalidOption)
	case custom && cfg.discovery != nil:
		return fmt.Errorf("%w: WithSelector cannot be combined with WithDiscovery", ErrInvalidOption)
	case custom && cfg.autoEject:
		return fmt.Errorf("%w: WithSelector cannot be combined with WithAutoEject", ErrInvalidOption)
	case cfg.discovery != nil && cfg.discovery.endpoint == "":
		return fmt.Errorf("%w: WithDiscoveryRetry needs WithDiscovery", ErrInvalidOption)
	case !custom && len(servers) == 0 && cfg.discovery == nil:
		return fmt.Errorf("%w: no servers", ErrBadServer)
	case !custom && len(servers) == 0:
		// The placement is built when discovery brings servers; check now
		// that the hash and distribution can be built at all.
		_, err := newSelector([]Server{{Addr: "127.0.0.1:11211", Weight: 1}}, cfg.hash, cfg.distribution, cfg.hashTag)
		return err
	}
	return nil
}

// Name returns "memcached", the tier's name in the chain's stats.
func (t *Tier) Name() string { return "memcached" }

// Servers returns the current server list: the one given to New, in its
// order, or the one discovery found last.
func (t *Tier) Servers() []Server { return t.members.current.Load().servers() }

// Counters implements tier.Counter. The keys are:
//
//	hits             keys found, by Get and GetMulti
//	misses           keys not found, decode_errors included (a GetMulti
//	                 that failed on a node counts that node's keys here)
//	errors           operations that failed to talk to memcached
//	timeouts         the errors that were timeouts
//	too_large        Set and Add refused for size, here or by the server
//	decode_errors    items found but not written by this package
//	encoded_keys     keys sent hashed because memcached cannot carry them
//	not_stored       Add calls that found the key present
//	expired_skipped  Set and Add of an entry that had already expired
//	retries          operations tried again after a stale pooled connection
//	node_down        operations answered at once with ErrNodeDown or
//	                 ErrNoServers, without touching the network
//	ejections        times a node was marked down
//	ttl_capped       writes to a substitute node whose TTL was cut to the
//	                 ejected TTL cap (auto-eject)
//	placement_errors placements auto-eject could not rebuild (a host name
//	                 that no longer resolves); the old one stays
//	background_panics panics recovered in the health or discovery goroutine
//
// With WithDiscovery, also:
//
//	discovery_polls   queries of the configuration endpoint
//	discovery_errors  queries that failed, or whose reply was unusable
//	discovery_updates server lists put in place
//	discovery_version version of the list in place; -1 before the first
//
// Bulk adds and restart detection (WithRestartDetection) add:
//
//	bulk_sent, bulk_batches  adds and batches written by AddBulk
//	restart_checks           checks of a node for a restart
//	restart_check_errors     the checks that could not get an answer
//	restarts_detected        nodes found running as a new process
//	flushes_detected         nodes found flushed (the sentinel key gone)
//	restarts_dropped         restarts not reported: nobody read Restarts
//	restart_panics           panics recovered in restart detection
//
// Leases (tier.Leaser, see lease.go) add:
//
//	lease_keys        keys whose lease was asked for
//	leases_won        leases granted to this Tier's callers
//	leases_held       keys whose lease someone else held
//	lease_takeovers   leases won by rewriting an item that existed
//	lease_fills       fills stored; lease_fills_refused, fills whose lease
//	                  an invalidation or a takeover had voided
//	lease_releases    leases given up
//	markers           invalidation markers written (Set, Delete)
//	lease_protocol_meta, lease_protocol_classic
//	                  nodes whose leases and bulk adds use the meta or
//	                  the classic protocol (see WithLeaseProtocol); a
//	                  node not yet asked counts in neither
//	lease_protocol_probes, lease_protocol_probe_errors
//	                  nodes asked which protocol they speak, and the
//	                  asks that got no answer
//
// NodeStats breaks most of these down per server.
func (t *Tier) Counters() map[string]int64 {
	m := t.stats.snapshot()
	if t.cfg.discovery != nil {
		t.stats.discoverySnapshot(m)
	}
	t.cold.addCounters(m)
	t.lease.addCounters(m)
	nodes := t.members.current.Load().nodes()
	t.addProtocolCounters(m, nodes...)
	for _, n := range nodes {
		m["retries"] += n.pool.Stats().Retries
	}
	return m
}

// Close stops the Tier's goroutines and closes every connection, idle or
// in use (an operation in flight fails with ErrUnavailable), after which
// every method returns tier.ErrClosed. Closing twice is not an error.
func (t *Tier) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.stopBG()
	for _, n := range t.members.current.Load().nodes() {
		n.pool.Close()
	}
	t.bg.Wait()
	// Discovery may have put new nodes in place meanwhile.
	for _, n := range t.members.current.Load().nodes() {
		n.pool.Close()
	}
	return nil
}

// Get implements tier.Tier. A key memcached does not hold, or holds under a
// value this package did not write, returns an error wrapping tier.ErrMiss.
// A key whose node is down returns ErrNodeDown at once.
//
// ctx bounds the wait for room on the node's connections and for the
// reply; the node itself is given the timeout (see WithTimeout).
func (t *Tier) Get(ctx context.Context, key string) (tier.Entry, error) {
	if err := t.ready(ctx, "get"); err != nil {
		return tier.Entry{}, err
	}
	wire, hashed := t.encodeKey(key)
	r, err := t.route(wire)
	if err != nil {
		return tier.Entry{}, t.unroutable("get", err)
	}
	n := r.owner
	if !n.isUp() {
		return tier.Entry{}, t.skip(n)
	}
	var (
		it      mcwire.Reply
		found   bool
		refused string
	)
	req := &mcwire.Request{Buf: mcwire.AppendRetrieval(nil, "get", []string{wire}),
		Read: readItems(1, func(rep mcwire.Reply) { it, found = rep, true }, &refused)}
	if err := t.roundTrip(ctx, "get", n, req); err != nil {
		return tier.Entry{}, err
	}
	if refused != "" {
		return tier.Entry{}, t.fail("get "+n.key, fmt.Errorf("server replied SERVER_ERROR %s", refused))
	}
	if !found {
		t.miss(n, 1)
		return tier.Entry{}, errMiss
	}
	if it.Key != wire {
		return tier.Entry{}, t.nodeFail("get", n, fmt.Errorf("server answered with key %q", it.Key))
	}
	e, err := decodeItem(key, hashed, it.Flags, it.Value)
	if err != nil {
		if !isNoEntry(err) {
			t.stats.decodeErrors.Add(1)
		}
		t.miss(n, 1)
		return tier.Entry{}, fmt.Errorf("memcached: get: %w: %w", tier.ErrMiss, err)
	}
	t.hit(n, 1)
	return e, nil
}

// GetMulti implements tier.MultiGetter: the keys of each node are asked
// for in pieces of a bounded size (getPieceKeys), pipelined on the node's
// connections, the nodes in parallel. Every key is encoded to a legal
// memcached key, so no single key can fail the batch. The keys of a node
// that is down are not asked for. When a node fails or is down, the
// entries found on the others (and in the pieces of the node that were
// answered) are returned together with an error wrapping ErrUnavailable.
func (t *Tier) GetMulti(ctx context.Context, keys []string) (map[string]tier.Entry, error) {
	if err := t.ready(ctx, "get multi"); err != nil {
		return nil, err
	}
	type request struct {
		key    string
		hashed bool
	}
	byWire := make(map[string]request, len(keys))
	snap := t.members.current.Load()
	var (
		groups []*nodeBatch
		byNode = make(map[*node]*nodeBatch)
		errs   []error
	)
	for _, key := range keys {
		wire, hashed := t.encodeKey(key)
		if _, dup := byWire[wire]; dup {
			continue
		}
		byWire[wire] = request{key, hashed}
		r, err := snap.route(wire)
		if err != nil {
			if len(errs) == 0 {
				errs = append(errs, t.unroutable("get multi", err)) // once per call
			}
			continue
		}
		b := byNode[r.owner]
		if b == nil {
			b = &nodeBatch{node: r.owner}
			byNode[r.owner] = b
			groups = append(groups, b)
		}
		b.wires = append(b.wires, wire)
	}
	t.fetch(ctx, groups)

	found := make(map[string]tier.Entry, len(byWire))
	for _, b := range groups {
		hits := 0
		for _, piece := range b.pieces {
			for _, it := range piece {
				req, asked := byWire[it.key]
				if !asked {
					continue // a confused server sent a key nobody asked for
				}
				e, derr := decodeItem(req.key, req.hashed, it.flags, it.value)
				if derr != nil {
					if !isNoEntry(derr) {
						t.stats.decodeErrors.Add(1)
					}
					continue
				}
				found[req.key] = e
				hits++
			}
		}
		t.hit(b.node, hits)
		if !b.skipped {
			t.miss(b.node, len(b.wires)-hits)
		}
		if b.err != nil {
			errs = append(errs, b.err)
		}
	}
	return found, errors.Join(errs...)
}

// nodeBatch is the part of a GetMulti that goes to one node.
type nodeBatch struct {
	node    *node
	wires   []string
	pieces  [][]foundItem // the items of the pieces answered
	err     error
	skipped bool // the node was down: counted in node_down, not as misses
}

// foundItem is an item a get returned.
type foundItem struct {
	key   string
	flags uint32
	value []byte
}

// fetch runs the multi-gets of a GetMulti, one goroutine per node,
// skipping the nodes that are down. It returns when all have finished.
func (t *Tier) fetch(ctx context.Context, batches []*nodeBatch) {
	one := func(b *nodeBatch) {
		if !b.node.isUp() {
			b.err, b.skipped = t.skip(b.node), true
			return
		}
		pieces := make([][]foundItem, (len(b.wires)+getPieceKeys-1)/getPieceKeys)
		refused := make([]string, len(pieces))
		reqs := make([]*mcwire.Request, len(pieces))
		for i := range pieces {
			wires := b.wires[i*getPieceKeys : min((i+1)*getPieceKeys, len(b.wires))]
			reqs[i] = &mcwire.Request{Buf: mcwire.AppendRetrieval(nil, "get", wires),
				Read: readItems(1, func(rep mcwire.Reply) {
					if pieces[i] == nil {
						pieces[i] = make([]foundItem, 0, len(wires))
					}
					pieces[i] = append(pieces[i], foundItem{rep.Key, rep.Flags, rep.Value})
				}, &refused[i])}
		}
		ok, err := t.pipeline(ctx, "get multi", b.node, reqs, true)
		for i, items := range pieces {
			if !ok[i] {
				continue
			}
			b.pieces = append(b.pieces, items)
			if refused[i] != "" && err == nil {
				err = t.fail("get multi "+b.node.key, fmt.Errorf("server replied SERVER_ERROR %s", refused[i]))
			}
		}
		b.err = err
	}
	if len(batches) == 1 {
		one(batches[0])
		return
	}
	var wg sync.WaitGroup
	for _, b := range batches {
		wg.Go(func() { one(b) })
	}
	wg.Wait()
}

// Set implements tier.Tier. An entry that has already expired is not
// stored, and the key is deleted so that no older value stays behind; so
// is an entry too large for the servers, and Set then returns an error
// wrapping tier.ErrTooLarge. A key whose node is down returns ErrNodeDown
// at once; the node deletes the key before it takes traffic again.
func (t *Tier) Set(ctx context.Context, key string, e tier.Entry) error {
	wire, hashed, r, err := t.locate(ctx, "set", key)
	if err != nil {
		return err
	}
	now := t.clock.Now()
	if r.substitute() {
		e = t.capTTL(e, now)
	}
	exp, live := expiration(now, e.Expires)
	if !live {
		t.stats.expiredSkipped.Add(1)
		return t.remove(ctx, "set", r, wire)
	}
	it := newItem(key, wire, hashed, e, exp)
	n := r.owner
	t.learnItemLimit(n)
	if err := t.checkSize("set", n, it); err != nil {
		return errors.Join(err, t.remove(ctx, "set", r, wire))
	}
	if r.substitute() {
		t.invalidateHome(ctx, r.home, wire)
	}
	if n.skipWrite(wire) {
		return t.skip(n)
	}
	rep, err := t.store(ctx, "set", n, mcwire.AppendStorage(nil, "set", it, 0))
	switch {
	case err != nil:
		n.remember(wire)
		return err
	case rep.Code == "STORED":
		n.forget(wire)
		return nil
	case rep.TooLarge():
		return errors.Join(t.refusedTooLarge("set", n, it, rep.Msg), t.remove(ctx, "set", r, wire))
	default:
		n.remember(wire)
		return t.refused("set", n, rep)
	}
}

// store sends one storage command to n and returns its reply.
func (t *Tier) store(ctx context.Context, op string, n *node, buf []byte) (mcwire.Reply, error) {
	var rep mcwire.Reply
	err := t.roundTrip(ctx, op, n, oneReply(buf, &rep))
	return rep, err
}

// Add implements tier.Adder with memcached's add. It returns an error
// wrapping tier.ErrNotStored when the key is present, and one wrapping
// tier.ErrTooLarge, without sending anything, for an entry too large for
// the servers. An entry that has already expired is not sent, and Add
// returns nil: there is nothing worth storing.
func (t *Tier) Add(ctx context.Context, key string, e tier.Entry) error {
	wire, hashed, r, err := t.locate(ctx, "add", key)
	if err != nil {
		return err
	}
	now := t.clock.Now()
	if r.substitute() {
		e = t.capTTL(e, now)
	}
	exp, live := expiration(now, e.Expires)
	if !live {
		t.stats.expiredSkipped.Add(1)
		return nil
	}
	it := newItem(key, wire, hashed, e, exp)
	n := r.owner
	t.learnItemLimit(n)
	if err := t.checkSize("add", n, it); err != nil {
		return err
	}
	if !n.isUp() {
		return t.skip(n)
	}
	rep, err := t.store(ctx, "add", n, mcwire.AppendStorage(nil, "add", it, 0))
	switch {
	case err != nil:
		return err
	case rep.Code == "STORED":
		return nil
	case rep.Code == "NOT_STORED":
		t.stats.notStored.Add(1)
		return errNotStored
	case rep.TooLarge():
		return t.refusedTooLarge("add", n, it, rep.Msg)
	default:
		return t.refused("add", n, rep)
	}
}

// Delete implements tier.Tier. A key whose node is down returns
// ErrNodeDown at once; the node deletes the key before it takes traffic
// again.
func (t *Tier) Delete(ctx context.Context, key string) error {
	wire, _, r, err := t.locate(ctx, "delete", key)
	if err != nil {
		return err
	}
	return t.remove(ctx, "delete", r, wire)
}

// locate readies a keyed operation: the Tier is open, ctx is alive, and
// key's wire form and node are known.
func (t *Tier) locate(ctx context.Context, op, key string) (wire string, hashed bool, r route, err error) {
	if err := t.ready(ctx, op); err != nil {
		return "", false, route{}, err
	}
	wire, hashed = t.encodeKey(key)
	if r, err = t.route(wire); err != nil {
		return "", false, route{}, t.unroutable(op, err)
	}
	return wire, hashed, r, nil
}

// ready returns why an operation must not start: the Tier is closed or the
// caller has given up.
func (t *Tier) ready(ctx context.Context, op string) error {
	if t.closed.Load() {
		return fmt.Errorf("memcached: %s: %w", op, tier.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memcached: %s: %w", op, err)
	}
	return nil
}

func (t *Tier) encodeKey(key string) (wire string, hashed bool) {
	wire, hashed = t.keys.encode(key)
	if hashed {
		t.stats.encodedKeys.Add(1)
	}
	return wire, hashed
}

// route returns the nodes for wire in the current membership.
func (t *Tier) route(wire string) (route, error) {
	return t.members.current.Load().route(wire)
}

// remove deletes a wire key; a key that is not there is not an error.
func (t *Tier) remove(ctx context.Context, op string, r route, wire string) error {
	if r.substitute() {
		t.invalidateHome(ctx, r.home, wire)
	}
	n := r.owner
	if n.skipWrite(wire) {
		return t.skip(n)
	}
	if err := t.deleteOn(ctx, op, n, wire); err != nil {
		n.remember(wire)
		return err
	}
	n.forget(wire)
	return nil
}

// deleteOn deletes wire on n.
func (t *Tier) deleteOn(ctx context.Context, op string, n *node, wire string) error {
	rep, err := t.store(ctx, op, n, mcwire.AppendDelete(nil, wire))
	switch {
	case err != nil:
		return err
	case rep.Code == "DELETED" || rep.Code == "NOT_FOUND":
		return nil
	default:
		return t.refused(op, n, rep)
	}
}

// invalidateHome makes sure that the node a key belongs to will not serve
// an old value of it, when a write of the key went to a substitute: a down
// node remembers to delete the key before it returns; a node that is up
// (the placement is being rebuilt, or modula moved the key) deletes it
// now. The caller's own write decides the operation's outcome.
func (t *Tier) invalidateHome(ctx context.Context, home *node, wire string) {
	if home.skipWrite(wire) {
		return
	}
	if err := t.deleteOn(ctx, "delete", home, wire); err != nil {
		home.remember(wire)
		return
	}
	home.forget(wire)
}

func (t *Tier) tooLarge(op string, cause error) error {
	t.stats.tooLarge.Add(1)
	return fmt.Errorf("memcached: %s: %w: %w", op, tier.ErrTooLarge, cause)
}

func (t *Tier) hit(n *node, keys int) {
	t.stats.hits.Add(int64(keys))
	n.stats.hits.Add(int64(keys))
}

func (t *Tier) miss(n *node, keys int) {
	t.stats.misses.Add(int64(keys))
	n.stats.misses.Add(int64(keys))
}

// skip answers an operation on a node that is down, without touching the
// network.
func (t *Tier) skip(n *node) error {
	t.stats.nodeDown.Add(1)
	n.stats.skipped.Add(1)
	return n.downErr
}

// unroutable answers an operation that has no node to go to.
func (t *Tier) unroutable(op string, err error) error {
	if errors.Is(err, ErrNoServers) {
		t.stats.nodeDown.Add(1)
		return fmt.Errorf("memcached: %s: %w", op, err)
	}
	return t.fail(op, err)
}

// nodeFail counts a failure to talk to node n and wraps it in
// ErrUnavailable.
func (t *Tier) nodeFail(op string, n *node, err error) error {
	n.stats.errors.Add(1)
	if isTimeout(err) && !errors.Is(err, mcwire.ErrConnLost) {
		n.stats.timeouts.Add(1)
	}
	return t.fail(op+" "+n.key, err)
}

// fail counts a failure to talk to memcached and wraps it in
// ErrUnavailable.
func (t *Tier) fail(op string, err error) error {
	t.stats.errors.Add(1)
	if isTimeout(err) {
		t.stats.timeouts.Add(1)
	}
	return fmt.Errorf("memcached: %s: %w: %w", op, ErrUnavailable, err)
}
