package memcached

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"

	"github.com/tiercache/tiercache/store/memcached/internal/wire"
	"github.com/tiercache/tiercache/tier"
)

// node is one memcached server: its connection pool, its health and its
// counters. Its fields other than the atomics and those under the health
// mutex are fixed at creation. It is safe for concurrent use.
//
// Every request to the node, whatever sends it (operations, leases, bulk
// adds, health probes, restart checks), goes through its one pool (package
// wire): at most WithServerConnections connections, requests pipelined on
// them. The pool tells the node's health of every answer and of every
// failure that is the node's own (see observe); callers waiting for room
// in the pool are not failures.
type node struct {
	addr net.Addr // as the selector returns it
	key  string   // addr.String(): the node's identity
	pool *wire.Pool

	health
	stats nodeCounters
	proto nodeProtocol // the protocol its leases use (leaseproto.go)

	// itemLimit is the server's item size limit as learnt from the server
	// (its item_size_max, or the first value it refused); 0 until known.
	itemLimit  atomic.Int64
	limitAsked atomic.Bool
	downErr    error // returned, preallocated, while the node is down
}

// Bounds of the requests the Tier sends.
const (
	// getPieceKeys is how many keys one get command of a multi-get asks
	// for: a multi-get is cut into pieces this size, pipelined.
	getPieceKeys = 100

	// pipelineDepth is how many requests each connection to a node has in
	// flight at most.
	pipelineDepth = 64
)

// newNode returns a node for addr, with its pool.
func (t *Tier) newNode(addr net.Addr) *node {
	n := &node{addr: addr, key: addr.String()}
	n.downErr = fmt.Errorf("memcached: %s: %w", n.key, ErrNodeDown)
	n.pool = wire.NewPool(wire.Config{
		Network: addr.Network(),
		Addr:    n.key,
		Conns:   t.cfg.serverConns,
		Depth:   pipelineDepth,
		Timeout: t.cfg.timeout,
		Gate: func() error {
			if !n.isUp() {
				return n.downErr
			}
			return nil
		},
		Report: func(err error) { t.observe(n, err) },
		Restarted: func() {
			t.forgetProtocol(n)
			n.itemLimit.Store(0)
			n.limitAsked.Store(false)
		},
	})
	return n
}

// retire takes n out of service for good: its connections, idle or in use,
// are closed, and it opens no more.
func (t *Tier) retire(n *node) { n.pool.Close() }

// roundTrip sends req to n and waits for its replies. A failure comes back
// as the operation's error: ErrNodeDown while n is down, ctx's error when
// the caller gave up, an ErrUnavailable otherwise.
func (t *Tier) roundTrip(ctx context.Context, op string, n *node, req *wire.Request) error {
	n.stats.requests.Add(1)
	if err := n.pool.Do(ctx, req); err != nil {
		return t.opFail(ctx, op, n, err)
	}
	return nil
}

// pipeline sends reqs to n without waiting between them, then waits for
// all; a request lost on a stale connection is sent again, and so, with
// idempotent, is one lost behind another's failure while n is still up.
// It returns the first failure, counted once, and which requests
// succeeded.
func (t *Tier) pipeline(ctx context.Context, op string, n *node, reqs []*wire.Request, idempotent bool) (ok []bool, err error) {
	calls := make([]*wire.Call, 0, len(reqs))
	for _, req := range reqs {
		n.stats.requests.Add(1)
		calls = append(calls, n.pool.Send(ctx, req))
	}
	ok = make([]bool, len(reqs))
	var first error
	for i, c := range calls {
		cerr := c.Wait(ctx)
		lost := idempotent && errors.Is(cerr, wire.ErrConnLost) && n.isUp()
		if cerr != nil && (wire.Stale(cerr) || lost) && ctx.Err() == nil {
			cerr = n.pool.Do(ctx, reqs[i])
		}
		if cerr == nil {
			ok[i] = true
		} else if first == nil {
			first = cerr
		}
	}
	if first != nil {
		return ok, t.opFail(ctx, op, n, first)
	}
	return ok, nil
}

// opFail turns a request's failure into the operation's error.
func (t *Tier) opFail(ctx context.Context, op string, n *node, err error) error {
	switch {
	case errors.Is(err, ErrNodeDown):
		return t.skip(n)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return fmt.Errorf("memcached: %s: %w", op, err)
	case t.closed.Load():
		return fmt.Errorf("memcached: %s: %w", op, tier.ErrClosed)
	case errors.Is(err, wire.ErrClosed):
		// Not the node's failure: it has left the cluster.
		t.stats.errors.Add(1)
		return fmt.Errorf("memcached: %s %s: %w: the server left the cluster", op, n.key, ErrUnavailable)
	}
	return t.nodeFail(op, n, err)
}

// oneReply is a request of one command whose one reply it keeps in rep.
// ERROR and CLIENT_ERROR mean the server did not read the command as it
// was written: the connection is then out of step, and is dropped.
func oneReply(buf []byte, rep *wire.Reply) *wire.Request {
	return &wire.Request{Buf: buf, Read: func(r *wire.Reader) error {
		var err error
		*rep, err = r.Next()
		if err == nil {
			err = outOfStep(*rep)
		}
		return err
	}}
}

// outOfStep returns an error for the replies after which a connection can
// no longer be trusted: ERROR, CLIENT_ERROR.
func outOfStep(rep wire.Reply) error {
	if rep.Code == "ERROR" || rep.Code == "CLIENT_ERROR" {
		return fmt.Errorf("%w: %s %s", wire.ErrProtocol, rep.Code, rep.Msg)
	}
	return nil
}

// readItems returns a Read for the replies of get or gets commands, one
// per piece of keys, each ending with END: every VALUE goes to found. A
// get answered with SERVER_ERROR (a proxy that could not forward it)
// leaves its keys unanswered, and its message in refused.
func readItems(pieces int, found func(wire.Reply), refused *string) func(*wire.Reader) error {
	return func(r *wire.Reader) error {
		for done := 0; done < pieces; {
			rep, err := r.Next()
			if err != nil {
				return err
			}
			switch rep.Code {
			case "VALUE":
				found(rep)
			case "END":
				done++
			case "SERVER_ERROR":
				*refused = rep.Msg
				done++
			default:
				return fmt.Errorf("%w: %s in the reply to a get", wire.ErrProtocol, rep.Code)
			}
		}
		return nil
	}
}

// checkSize refuses an item memcached would refuse for its size (see
// itemOverhead), so that it is never sent: beyond WithMaxItemSize, or
// beyond what node n is known to take.
func (t *Tier) checkSize(op string, n *node, it *wire.Item) error {
	size := itemSize(it)
	limit := t.cfg.maxItemSize
	if l := int(n.itemLimit.Load()); l > 0 && l < limit {
		limit = l
	}
	if size <= limit {
		return nil
	}
	return t.tooLarge(op, fmt.Errorf("%d-byte value and %d-byte key need %d bytes, the item size limit is %d",
		len(it.Value), len(it.Key), size, limit))
}

func itemSize(it *wire.Item) int { return len(it.Key) + len(it.Value) + itemOverhead }

// refusedTooLarge learns from n refusing it for its size that n takes
// nothing that large, and returns the operation's error.
func (t *Tier) refusedTooLarge(op string, n *node, it *wire.Item, msg string) error {
	n.lowerItemLimit(int64(itemSize(it) - 1))
	return t.tooLarge(op, fmt.Errorf("server replied SERVER_ERROR %s", msg))
}

func (n *node) lowerItemLimit(limit int64) {
	for {
		cur := n.itemLimit.Load()
		if cur > 0 && cur <= limit || n.itemLimit.CompareAndSwap(cur, limit) {
			return
		}
	}
}

// learnItemLimit asks n, once in its life, for its item size limit
// ("stats settings", item_size_max), so that values too large for it are
// kept in the tiers below without being sent. It runs before n's first
// write. A server that does not answer (a proxy, which may hang up on
// stats) is not asked again: its first refusal teaches the same.
func (t *Tier) learnItemLimit(n *node) {
	if n.limitAsked.Load() || !n.isUp() || !n.limitAsked.CompareAndSwap(false, true) {
		return
	}
	var max int64
	req := &wire.Request{Buf: []byte("stats settings\r\n"), Exclusive: true, Probe: true,
		Read: func(r *wire.Reader) error {
			for {
				rep, err := r.Next()
				if err != nil {
					return err
				}
				switch rep.Code {
				case "END":
					return nil
				case "STAT":
					if rep.Key == "item_size_max" {
						max, _ = strconv.ParseInt(string(rep.Value), 10, 64)
					}
				default:
					return fmt.Errorf("%w: %s in the reply to stats settings", wire.ErrProtocol, rep.Code)
				}
			}
		}}
	if n.pool.Do(t.bgCtx, req) == nil && max > 0 {
		n.lowerItemLimit(max)
	}
}
