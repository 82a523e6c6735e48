package memcached

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mcwire "github.com/tiercache/tiercache/store/memcached/internal/wire"
)

// Which protocol a node's leases and bulk adds use.
//
// The meta protocol (lease.go) needs memcached 1.6 or later, spoken
// directly. twemproxy (nutcracker) and older servers know only the classic
// text commands; the classic protocol (leaseclassic.go) builds the same
// leases on gets, add and cas. Both leave the same items, so processes on
// either protocol can share one memcached. AddBulk (pipeline.go) asks the
// same question of a node, and gets the same answer: quiet ms adds where
// the meta protocol is spoken, classic adds elsewhere.
//
// With LeaseProtocolAuto, the first lease operation or bulk add on a node
// asks it "version" and the meta no-op "mn" in one write, sent alone on
// one of the node's connections (nothing pipelined behind it, since a
// proxy may hang up on mn):
//
//	VERSION 1.6.x, MN          meta
//	VERSION 1.5.x, MN          classic (1.5's experimental meta commands
//	                           lack the lease flags)
//	VERSION ..., ERROR         classic (a server that does not know mn)
//	connection closed          classic, once a second connection answers
//	                           "version": nutcracker 0.5.0 closes a client
//	                           connection on a command it cannot parse,
//	                           dropping the replies still due on it
//
// The answer is kept for the life of the node, or until its pooled
// connections go stale (the server restarted, perhaps as another
// version). A probe that gets no answer decides nothing: the lease call
// (or the bulk add's entries) fails for that node, and the next one asks
// again. Probes are not requests: they count neither in the node's
// requests nor towards its health, since a proxy that hangs up on "mn" is
// working as designed.

// LeaseProtocol names the commands the Tier's leases (tier.Leaser) and bulk
// adds (AddBulk, which warmup uses) are built on. See WithLeaseProtocol.
type LeaseProtocol string

const (
	// LeaseProtocolAuto asks each node once which protocol it speaks, and
	// uses meta where it can. The default.
	LeaseProtocolAuto LeaseProtocol = "auto"
	// LeaseProtocolMeta uses memcached's meta commands (mg, ms, md): one
	// round trip per node for a lease, bulk adds answered only when they
	// fail; memcached 1.6 or later, spoken directly.
	LeaseProtocolMeta LeaseProtocol = "meta"
	// LeaseProtocolClassic uses the classic text commands gets, add, cas
	// and set, which twemproxy (nutcracker) proxies and every memcached
	// knows: two round trips per node for a lease that is won, a reply
	// for every bulk add.
	LeaseProtocolClassic LeaseProtocol = "classic"
)

// LeaseProtocols returns the values WithLeaseProtocol accepts.
func LeaseProtocols() []LeaseProtocol {
	return []LeaseProtocol{LeaseProtocolAuto, LeaseProtocolMeta, LeaseProtocolClassic}
}

// leaseProto is what a node is known to speak, for its leases and its bulk
// adds; the zero value is unknown.
type leaseProto int32

const (
	protoUnknown leaseProto = iota
	protoMeta
	protoClassic
)

// nodeProtocol is a node's detected protocol. It is safe for concurrent
// use.
type nodeProtocol struct {
	known atomic.Int32 // a leaseProto

	// mu is held while the node is probed, so that one probe runs at a
	// time; the callers that waited for a probe that failed take its
	// error rather than each probing a hung node in turn.
	mu       sync.Mutex
	failedAt time.Time
	failure  error
}

// leaseProtocol returns the protocol n's leases and bulk adds use, probing
// n first under LeaseProtocolAuto when it is not known yet.
func (t *Tier) leaseProtocol(n *node) (leaseProto, error) {
	if p := t.currentProtocol(n); p != protoUnknown {
		return p, nil
	}
	asked := time.Now()
	n.proto.mu.Lock()
	defer n.proto.mu.Unlock()
	if p := leaseProto(n.proto.known.Load()); p != protoUnknown {
		return p, nil // another caller's probe answered meanwhile
	}
	if n.proto.failedAt.After(asked) {
		return protoUnknown, n.proto.failure // and another's failed
	}
	t.lease.probes.Add(1)
	p, err := t.probeProtocol(n)
	if err != nil {
		t.lease.probeErrors.Add(1)
		n.proto.failedAt, n.proto.failure = time.Now(), t.fail("lease protocol probe "+n.key, err)
		return protoUnknown, n.proto.failure
	}
	n.proto.known.Store(int32(p))
	return p, nil
}

// forgetProtocol makes the next lease operation on n probe it again.
func (t *Tier) forgetProtocol(n *node) {
	if t.cfg.leaseProtocol == LeaseProtocolAuto {
		n.proto.known.Store(int32(protoUnknown))
	}
}

// currentProtocol is what n's leases use now, without probing.
func (t *Tier) currentProtocol(n *node) leaseProto {
	switch t.cfg.leaseProtocol {
	case LeaseProtocolMeta:
		return protoMeta
	case LeaseProtocolClassic:
		return protoClassic
	}
	return leaseProto(n.proto.known.Load())
}

// probeProtocol asks n which protocol it speaks (see the top of the file).
func (t *Tier) probeProtocol(n *node) (leaseProto, error) {
	var version, meta mcwire.Reply
	err := t.probeExchange(n, "version\r\nmn\r\n", func(r *mcwire.Reader) error {
		var err error
		if version, err = r.Next(); err != nil {
			return err
		}
		meta, err = r.Next()
		return err
	})
	switch {
	case err == nil && version.Code != "VERSION":
		return protoUnknown, fmt.Errorf("%w: %s to version", mcwire.ErrProtocol, version.Code)
	case err == nil && meta.Code == "MN":
		if beforeMeta(version.Msg) {
			return protoClassic, nil
		}
		return protoMeta, nil
	case err == nil && (meta.Code == "ERROR" || meta.Code == "CLIENT_ERROR" || meta.Code == "SERVER_ERROR"):
		return protoClassic, nil
	case err == nil:
		return protoUnknown, fmt.Errorf("%w: %s to mn", mcwire.ErrProtocol, meta.Code)
	case !mcwire.Stale(err) && !errors.Is(err, mcwire.ErrProtocol):
		return protoUnknown, err // no answer: a timeout, a refused dial
	}
	// The server hung up on mn, or answered it with a line no memcached
	// sends. A proxy does that; make sure it is alive.
	err = t.probeExchange(n, "version\r\n", func(r *mcwire.Reader) error {
		rep, err := r.Next()
		if err == nil && rep.Code != "VERSION" && rep.Code != "SERVER_ERROR" {
			err = fmt.Errorf("%w: %s to version", mcwire.ErrProtocol, rep.Code)
		}
		return err
	})
	if err != nil {
		return protoUnknown, err
	}
	return protoClassic, nil
}

// probeExchange sends req to n alone on its connection (a proxy may hang
// up on it), and reads the replies with read. It is bounded by the
// timeout and by Close, and is neither counted as a request of n nor
// observed by its health.
func (t *Tier) probeExchange(n *node, req string, read func(*mcwire.Reader) error) error {
	return n.pool.Do(t.bgCtx, &mcwire.Request{Buf: []byte(req), Read: read, Exclusive: true, Probe: true})
}

// beforeMeta reports whether version, as memcached says it ("1.6.18"),
// is older than 1.6, the first release whose meta commands grant leases.
// A version that does not parse (a proxy, a fork) is not: its MN is
// trusted.
func beforeMeta(version string) bool {
	major, rest, ok := strings.Cut(version, ".")
	if !ok {
		return false
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	maj, err1 := strconv.Atoi(major)
	minor, err2 := strconv.Atoi(rest[:end])
	if err1 != nil || err2 != nil {
		return false
	}
	return maj < 1 || maj == 1 && minor < 6
}

// addProtocolCounters adds, to a Tier's or a node's counters, how many of
// nodes use each protocol.
func (t *Tier) addProtocolCounters(m map[string]int64, nodes ...*node) {
	var meta, classic int64
	for _, n := range nodes {
		switch t.currentProtocol(n) {
		case protoMeta:
			meta++
		case protoClassic:
			classic++
		}
	}
	m["lease_protocol_meta"] = meta
	m["lease_protocol_classic"] = classic
}
