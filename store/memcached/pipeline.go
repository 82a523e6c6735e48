package memcached

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"strconv"
	"sync"
	"time"

	mcwire "github.com/tiercache/tiercache/store/memcached/internal/wire"
	"github.com/tiercache/tiercache/tier"
)

// Bulk adds.
//
// AddBulk streams adds to each node in batches, pipelined on the node's
// connections like every other request (package wire). On a node that
// speaks memcached's meta protocol (asked as the leases ask it:
// WithLeaseProtocol, leaseproto.go) a batch is
//
//	ms <key> <len> F<flags> T<ttl> ME q O<n>\r\n<value>\r\n    (×batch, then)
//	mn\r\n
//
// ME is add mode; q (quiet) suppresses the HD reply of every command that
// succeeded, so a batch costs the server next to no writing; mn answers MN
// once every command before it has been processed. The replies of a batch
// are therefore only its failures, each tagged with its command's opaque
// O<n>, then MN: NS is a key that was present. A node without the meta
// protocol (twemproxy, which hangs up on it) gets classic adds instead,
// one reply each (pipelineclassic.go), in the same batches and window.
// Items are built by newItem, exactly as Add builds them.
//
// The window bounds what a node has queued from AddBulk at any time
// (window × batch commands): the caller writes the next batch without
// waiting for the last one's replies while fewer than window batches are
// unanswered. memcached serves a connection at most 20 commands per turn
// (-R) before it moves on to the next one with work, so a live request
// sent to a node waits for at most a turn of the connection a batch is on.
const (
	bulkBatchBytes = 64 << 10
	bulkClockEvery = 64
	bulkReadyEvery = 256
)

// Defaults of WithBulkWindow, chosen with BenchmarkColdStart (see
// docs/benchmarks.md): four batches of 256 in flight per node.
const (
	DefaultBulkWindow = 4
	DefaultBulkBatch  = 256
)

// Bounds on WithBulkWindow.
const (
	maxBulkWindow = 64
	maxBulkBatch  = 4096
)

// WithBulkWindow sets how AddBulk (the warmup's writer) pipelines to each
// node: at most window batches of at most batch commands written and not
// yet answered. The product bounds the commands a warmup keeps queued in
// a node. The defaults (DefaultBulkWindow, DefaultBulkBatch) keep live
// Gets' median near idle while reaching most of what one node accepts.
// window must be between 1 and 64, batch between 1 and 4096.
func WithBulkWindow(window, batch int) Option {
	return func(c *config) error {
		if window < 1 || window > maxBulkWindow {
			return fmt.Errorf("%w: bulk window: %d batches in flight, must be between 1 and %d", ErrInvalidOption, window, maxBulkWindow)
		}
		if batch < 1 || batch > maxBulkBatch {
			return fmt.Errorf("%w: bulk window: batches of %d commands, must be between 1 and %d", ErrInvalidOption, batch, maxBulkBatch)
		}
		c.bulkWindow, c.bulkBatch = window, batch
		return nil
	}
}

var _ tier.BulkAdder = (*Tier)(nil)

// AddBulk implements tier.BulkAdder with pipelined adds on each node's
// connections (WithBulkWindow): meta-protocol adds, or classic ones on a
// node that does not speak the meta protocol (see WithLeaseProtocol).
// done is called, for each entry, with what Add would have returned, from
// the calling goroutine or a connection's reader.
//
// A node that cannot be reached, or that does not answer when asked which
// protocol it speaks, fails its entries with ErrUnavailable. A node that
// fails mid-batch fails that batch's entries whose fate is unknown; the
// next batch tries again. A classic add refused with SERVER_ERROR
// (twemproxy's answer for a server behind it that is down) fails that
// entry alone. On the meta protocol memcached ties most replies to their
// command, but not "SERVER_ERROR out of memory", which fails every
// command of the batch it could belong to: done may report a failure for
// an entry that was stored, never the reverse.
//
// AddBulk stops taking entries when ctx ends or the Tier closes, reports
// the entries already taken, and returns an error.
func (t *Tier) AddBulk(ctx context.Context, entries iter.Seq2[string, tier.Entry], done func(key string, err error)) error {
	if err := t.ready(ctx, "add bulk"); err != nil {
		return err
	}
	run := &bulkRun{t: t, ctx: ctx, done: done, nodes: make(map[*node]*bulkNode)}
	n := 0
	for key, e := range entries {
		if n++; n%bulkReadyEvery == 0 {
			if err := t.ready(ctx, "add bulk"); err != nil {
				done(key, err)
				break
			}
		}
		if n%bulkClockEvery == 1 {
			run.now = t.clock.Now()
		}
		run.add(key, e)
	}
	run.finish()
	if err := t.ready(ctx, "add bulk"); err != nil {
		return err
	}
	return nil
}

// bulkRun is one AddBulk call. It belongs to the calling goroutine.
type bulkRun struct {
	t     *Tier
	ctx   context.Context
	done  func(string, error)
	nodes map[*node]*bulkNode
	// now is the time expirations are computed against, read every
	// bulkClockEvery entries: they are rounded up to seconds anyway.
	now time.Time
}

// add builds key's item, as Add does, and puts it in its node's batch.
func (r *bulkRun) add(key string, e tier.Entry) {
	t := r.t
	wire, hashed := t.encodeKey(key)
	rt, err := t.route(wire)
	if err != nil {
		r.done(key, t.unroutable("add bulk", err))
		return
	}
	if rt.substitute() {
		e = t.capTTL(e, r.now)
	}
	exp, live := expiration(r.now, e.Expires)
	if !live {
		t.stats.expiredSkipped.Add(1)
		r.done(key, nil) // Add stores nothing and returns nil
		return
	}
	it := newItem(key, wire, hashed, e, exp)
	nd := rt.owner
	if !nd.isUp() {
		r.done(key, t.skip(nd))
		return
	}
	t.learnItemLimit(nd)
	if err := t.checkSize("add bulk", nd, it); err != nil {
		r.done(key, err)
		return
	}
	r.node(nd).add(key, it)
}

// node returns nd's share of the run. Which protocol its batches speak
// is known from then on: nd is asked, as for leases, unless it was before
// or WithLeaseProtocol names one. A node that does not answer gets no
// batch, and its entries fail at once.
func (r *bulkRun) node(nd *node) *bulkNode {
	if n, ok := r.nodes[nd]; ok {
		return n
	}
	n := &bulkNode{run: r, node: nd}
	r.nodes[nd] = n
	n.proto, n.probeErr = r.t.leaseProtocol(nd)
	return n
}

// finish sends the partial batches and waits until every batch is
// answered.
func (r *bulkRun) finish() {
	for _, n := range r.nodes {
		if n.cur != nil {
			n.dispatch()
		}
		for len(n.inflight) > 0 {
			n.settleOldest()
		}
	}
}

// bulkBatch is a run of commands sent together, closed by mn on the meta
// protocol. keys[i] is the caller key of command i, whose opaque is i.
type bulkBatch struct {
	buf  []byte
	keys []string
	its  []*mcwire.Item // for learning an item size limit from a refusal
	// reported is set, by the batch's reader, once every key of the batch
	// is reported.
	reported bool
	req      mcwire.Request
	call     *mcwire.Call
}

var batchPool = sync.Pool{New: func() any {
	return &bulkBatch{buf: make([]byte, 0, bulkBatchBytes+8<<10), keys: make([]string, 0, DefaultBulkBatch)}
}}

func (b *bulkBatch) release() {
	clear(b.keys)
	clear(b.its)
	b.buf, b.keys, b.its = b.buf[:0], b.keys[:0], b.its[:0]
	b.reported, b.call, b.req = false, nil, mcwire.Request{}
	batchPool.Put(b)
}

// bulkNode is one node's share of a bulkRun: the batch being filled, and
// the batches written and not yet settled, oldest first.
type bulkNode struct {
	run   *bulkRun
	node  *node
	proto leaseProto
	// probeErr is why the node's protocol is not known: its entries fail
	// with it, unsent.
	probeErr error
	cur      *bulkBatch
	inflight []*bulkBatch
}

// add appends the command storing it to the current batch.
func (n *bulkNode) add(key string, it *mcwire.Item) {
	if n.probeErr != nil {
		n.run.done(key, n.probeErr)
		return
	}
	if n.cur == nil {
		n.cur = batchPool.Get().(*bulkBatch)
	}
	b := n.cur
	if n.proto == protoClassic {
		b.buf = mcwire.AppendStorage(b.buf, "add", it, 0)
	} else {
		b.buf = appendAdd(b.buf, it, len(b.keys))
	}
	b.keys = append(b.keys, key)
	b.its = append(b.its, it)
	if len(b.keys) >= n.run.t.cfg.bulkBatch || len(b.buf) >= bulkBatchBytes {
		n.dispatch()
	}
}

// appendAdd appends a quiet meta-protocol add of it, tagged with opaque.
func appendAdd(buf []byte, it *mcwire.Item, opaque int) []byte {
	buf = append(buf, "ms "...)
	buf = append(buf, it.Key...)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, int64(len(it.Value)), 10)
	buf = append(buf, " F"...)
	buf = strconv.AppendUint(buf, uint64(it.Flags), 10)
	buf = append(buf, " T"...)
	buf = strconv.AppendInt(buf, int64(it.Expiration), 10)
	buf = append(buf, " ME q O"...)
	buf = strconv.AppendInt(buf, int64(opaque), 10)
	buf = append(buf, "\r\n"...)
	buf = append(buf, it.Value...)
	return append(buf, "\r\n"...)
}

// dispatch closes the current batch and writes it, once the window has
// room.
func (n *bulkNode) dispatch() {
	b := n.cur
	n.cur = nil
	if n.proto != protoClassic {
		b.buf = append(b.buf, "mn\r\n"...)
	}
	for len(n.inflight) >= n.run.t.cfg.bulkWindow {
		n.settleOldest()
	}
	read := n.readMetaBatch
	if n.proto == protoClassic {
		read = n.readClassicBatch
	}
	b.req = mcwire.Request{Buf: b.buf, Read: func(r *mcwire.Reader) error { return read(r, b) }}
	n.node.stats.requests.Add(1)
	b.call = n.node.pool.Send(n.run.ctx, &b.req)
	n.inflight = append(n.inflight, b)
	// The caller's goroutine reads and encodes entries without blocking
	// for as long as the window has room. Let live requests' goroutines,
	// woken by their replies, run before the next batch rather than at
	// the scheduler's next preemption, up to 10 ms away.
	runtime.Gosched()
}

// settleOldest waits for the oldest batch in flight to be answered, and
// reports its keys if its reader could not: it was never written, or its
// connection was lost before its first reply. A batch lost on a
// connection the server had closed while idle (memcached restarted), or
// behind another request's failure while the node is still up, is
// written once more: an add that had landed is then reported present.
func (n *bulkNode) settleOldest() {
	b := n.inflight[0]
	n.inflight = n.inflight[1:]
	err := b.call.Wait(context.Background()) // bounded by the timeout
	lost := errors.Is(err, mcwire.ErrConnLost) && n.node.isUp()
	if err != nil && !b.reported && (mcwire.Stale(err) || lost) && n.run.ctx.Err() == nil {
		err = n.node.pool.Do(n.run.ctx, &b.req)
	}
	if err != nil && !b.reported {
		n.fail(b, 0, n.run.t.opFail(n.run.ctx, "add bulk", n.node, err))
	}
	if err == nil {
		n.run.t.cold.bulkSent.Add(int64(len(b.keys)))
		n.run.t.cold.bulkBatches.Add(1)
	}
	b.release()
}

// fail reports every key of b from index from on as failed with err.
func (n *bulkNode) fail(b *bulkBatch, from int, err error) {
	for _, k := range b.keys[from:] {
		n.run.done(k, err)
	}
	b.reported = true
}

// readMetaBatch reads b's replies up to MN and reports every key of b. On
// a read or protocol error it reports the keys whose fate it does not know
// as failed, and returns the error. A connection lost before the first
// reply reports nothing: settleOldest tries the batch again or fails it.
func (n *bulkNode) readMetaBatch(r *mcwire.Reader, b *bulkBatch) error {
	t, nd := n.run.t, n.node
	var errs []error // errs[i] is key i's outcome; nil slice while all succeed
	settled, err := readQuietBatch(r, len(b.keys), func(i int, rep mcwire.Reply) {
		if errs == nil {
			errs = make([]error, len(b.keys))
		}
		switch {
		case rep.Code == "NS":
			t.stats.notStored.Add(1)
			errs[i] = errNotStored
		case rep.TooLarge():
			errs[i] = t.refusedTooLarge("add bulk", nd, b.its[i], rep.Msg)
		default:
			errs[i] = t.refused("add bulk", nd, rep)
		}
	})
	if err != nil && settled < 0 && errs == nil && mcwire.Stale(err) {
		return err
	}
	var cause error
	if err != nil {
		cause = t.nodeFail("add bulk", nd, err)
	}
	for i, k := range b.keys {
		switch {
		case i > settled:
			n.run.done(k, cause)
		case errs != nil:
			n.run.done(k, errs[i])
		default:
			n.run.done(k, nil)
		}
	}
	b.reported = true
	return err
}
