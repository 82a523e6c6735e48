package memcached

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/tier"
)

// Bulk adds.
//
// gomemcache sends one command and waits for its reply. AddBulk instead
// streams adds over a few connections per node that it dials for the
// call. On a node that speaks memcached's meta protocol (asked as the
// leases ask it: WithLeaseProtocol, leaseproto.go) a batch is
//
//	ms <key> <len> F<flags> T<ttl> ME q O<n>\r\n<value>\r\n    (×batch, then)
//	mn\r\n
//
// ME is add mode; q (quiet) suppresses the HD reply of every command that
// succeeded, so a batch costs the server next to no writing; mn answers MN
// once every command before it has been processed. The replies of a batch
// are therefore only its failures, each tagged with its command's opaque
// O<n>, then MN: NS is a key that was present. A connection writes its next
// batch without waiting for the last one's MN, up to its window of batches
// written and not yet answered, and a reader goroutine per connection
// matches replies to batches in order. A node without the meta protocol
// (twemproxy, which hangs up on it) gets classic adds instead, one reply
// each (pipelineclassic.go), in the same batches and window. Items are
// built by newItem, exactly as Add builds them.
//
// The window bounds what a node has queued from AddBulk at any time
// (connections × window × batch commands). memcached serves a connection
// at most 20 commands per turn (-R) before it moves on to the next one
// with work, so a live request sent to a node waits for at most a turn of
// each bulk connection, not for everything queued: fewer connections keep
// a warmup politer, a deeper window keeps the node busy while the client
// side waits for a CPU.
const (
	bulkBatchBytes = 64 << 10
	bulkClockEvery = 64
	bulkReadyEvery = 256
)

// Defaults of WithBulkWindow, chosen with BenchmarkColdStart (see
// docs/benchmarks.md): two connections each with two batches of 256 in
// flight reached ~305,000 adds/s on a loaded 2-core machine, with live Get
// p50 during the warmup near idle; four connections with four batches
// (the first version) reached ~340,000/s with p50 2.5× idle; one batch of
// 128 per connection fell to 235,000–270,000/s.
const (
	DefaultBulkConns  = 2
	DefaultBulkWindow = 2
	DefaultBulkBatch  = 256
)

// Bounds on WithBulkWindow.
const (
	maxBulkConns  = 64
	maxBulkWindow = 64
	maxBulkBatch  = 4096
)

// WithBulkWindow sets how AddBulk (the warmup's writer) pipelines to each
// node: conns connections, each with at most window batches of at most
// batch commands written and not yet answered. The product bounds the
// commands a warmup keeps queued in a node; conns bounds how many turns
// of bulk commands a live request to that node can wait behind. The
// defaults (DefaultBulkConns, DefaultBulkWindow, DefaultBulkBatch) keep
// live Gets' median near idle while reaching most of what one node
// accepts. conns and window must be between 1 and 64, batch between 1
// and 4096.
func WithBulkWindow(conns, window, batch int) Option {
	return func(c *config) error {
		if conns < 1 || conns > maxBulkConns {
			return fmt.Errorf("%w: bulk window: %d connections, must be between 1 and %d", ErrInvalidOption, conns, maxBulkConns)
		}
		if window < 1 || window > maxBulkWindow {
			return fmt.Errorf("%w: bulk window: %d batches in flight, must be between 1 and %d", ErrInvalidOption, window, maxBulkWindow)
		}
		if batch < 1 || batch > maxBulkBatch {
			return fmt.Errorf("%w: bulk window: batches of %d commands, must be between 1 and %d", ErrInvalidOption, batch, maxBulkBatch)
		}
		c.bulkConns, c.bulkWindow, c.bulkBatch = conns, window, batch
		return nil
	}
}

var _ tier.BulkAdder = (*Tier)(nil)

// AddBulk implements tier.BulkAdder with pipelined adds over a few
// connections per node (WithBulkWindow), opened for the call and closed
// when it returns: meta-protocol adds, or classic ones on a node that
// does not speak the meta protocol (see WithLeaseProtocol). done is
// called, for each entry, with what Add would have returned, from the
// calling goroutine or the connections' readers.
//
// A node that cannot be dialed, or that does not answer when asked which
// protocol it speaks, fails its entries at once with ErrUnavailable. A
// node that fails mid-batch fails that batch's entries whose fate is
// unknown; the next batch dials again. A classic add refused with
// SERVER_ERROR (twemproxy's answer for a server behind it that is down)
// fails that entry alone. On the meta protocol memcached ties most
// replies to their command, but not "SERVER_ERROR out of memory", which
// fails every command of the batch it could belong to: done may report a
// failure for an entry that was stored, never the reverse.
//
// AddBulk stops taking entries when ctx ends or the Tier closes, reports
// the entries already taken, and returns an error.
func (t *Tier) AddBulk(ctx context.Context, entries iter.Seq2[string, tier.Entry], done func(key string, err error)) error {
	if err := t.ready(ctx, "add bulk"); err != nil {
		return err
	}
	run := &bulkRun{t: t, ctx: ctx, done: done, nodes: make(map[*node]*bulkNode), replyTimeout: 4 * t.cfg.timeout}
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

// bulkRun is one AddBulk call. nodes belongs to the calling goroutine.
type bulkRun struct {
	t            *Tier
	ctx          context.Context
	done         func(string, error)
	nodes        map[*node]*bulkNode
	replyTimeout time.Duration
	// now is the time expirations are computed against, read every
	// bulkClockEvery entries: they are rounded up to seconds anyway.
	now time.Time
	wg  sync.WaitGroup
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
	if err := t.checkSize("add bulk", it); err != nil {
		r.done(key, err)
		return
	}
	if !rt.owner.isUp() {
		r.done(key, t.skip(rt.owner))
		return
	}
	r.node(rt.owner).add(key, it)
}

// node returns nd's share of the run, starting its connections the first
// time. Which protocol they speak is known from then on: nd is asked, as
// for leases, unless it was before or WithLeaseProtocol names one. A node
// that does not answer gets no connection, and its entries fail at once.
func (r *bulkRun) node(nd *node) *bulkNode {
	if n, ok := r.nodes[nd]; ok {
		return n
	}
	conns := r.t.cfg.bulkConns
	n := &bulkNode{run: r, node: nd, batches: make(chan *bulkBatch, conns)}
	r.nodes[nd] = n
	if n.proto, n.probeErr = r.t.leaseProtocol(nd); n.probeErr != nil {
		return n
	}
	for range conns {
		r.wg.Go(n.runConn)
	}
	return n
}

// finish sends the partial batches and waits until every batch is
// answered.
func (r *bulkRun) finish() {
	for _, n := range r.nodes {
		if n.cur != nil {
			n.dispatch()
		}
		close(n.batches)
	}
	r.wg.Wait()
}

// bulkBatch is a run of commands sent together, closed by mn on the meta
// protocol. keys[i] is the caller key of command i, whose opaque is i.
type bulkBatch struct {
	buf  []byte
	keys []string
}

var batchPool = sync.Pool{New: func() any {
	return &bulkBatch{buf: make([]byte, 0, bulkBatchBytes+8<<10), keys: make([]string, 0, DefaultBulkBatch)}
}}

func (b *bulkBatch) release() {
	clear(b.keys)
	b.buf, b.keys = b.buf[:0], b.keys[:0]
	batchPool.Put(b)
}

// bulkNode is one node's share of a bulkRun: the batch being filled, and
// the connections that send the full ones.
type bulkNode struct {
	run   *bulkRun
	node  *node
	proto leaseProto
	// probeErr is why the node's protocol is not known: its entries fail
	// with it, unsent.
	probeErr error
	cur      *bulkBatch
	batches  chan *bulkBatch
	// down is set when the node cannot be dialed: its batches then fail
	// at once instead of each waiting for a dial of its own.
	down    atomic.Bool
	downErr atomic.Pointer[error]
}

// add appends the command storing it to the current batch.
func (n *bulkNode) add(key string, it *memcache.Item) {
	if n.probeErr != nil {
		n.run.done(key, n.probeErr)
		return
	}
	if n.cur == nil {
		n.cur = batchPool.Get().(*bulkBatch)
	}
	b := n.cur
	if n.proto == protoClassic {
		b.buf = appendStorage(b.buf, "add", it, 0)
	} else {
		b.buf = appendAdd(b.buf, it, len(b.keys))
	}
	b.keys = append(b.keys, key)
	if len(b.keys) >= n.run.t.cfg.bulkBatch || len(b.buf) >= bulkBatchBytes {
		n.dispatch()
	}
}

// appendAdd appends a quiet meta-protocol add of it, tagged with opaque.
func appendAdd(buf []byte, it *memcache.Item, opaque int) []byte {
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

// dispatch closes the current batch and hands it to a connection.
func (n *bulkNode) dispatch() {
	b := n.cur
	n.cur = nil
	if n.proto != protoClassic {
		b.buf = append(b.buf, "mn\r\n"...)
	}
	select {
	case n.batches <- b:
	case <-n.run.ctx.Done():
		n.fail(b, 0, n.run.ctx.Err())
	}
	// The caller's goroutine reads and encodes entries without blocking
	// for as long as the window has room. Let live requests' goroutines,
	// woken by their replies, run before the next batch rather than at
	// the scheduler's next preemption, up to 10 ms away.
	runtime.Gosched()
}

// fail reports every key of b from index from on as failed with cause.
func (n *bulkNode) fail(b *bulkBatch, from int, cause error) {
	if from < len(b.keys) {
		err := cause
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			err = n.run.t.nodeFail("add bulk", n.node, cause)
		}
		for _, k := range b.keys[from:] {
			n.run.done(k, err)
		}
	}
	b.release()
}

// runConn sends the node's batches over one connection, dialing again
// after a failure, until the batches run out.
func (n *bulkNode) runConn() {
	var s *bulkSession
	defer func() {
		if s != nil {
			s.close()
		}
	}()
	for b := range n.batches {
		if err := n.run.ctx.Err(); err != nil {
			n.fail(b, 0, err)
			continue
		}
		if n.down.Load() {
			n.fail(b, 0, *n.downErr.Load())
			continue
		}
		if s != nil && s.broken.Load() {
			s.close()
			s = nil
		}
		if s == nil {
			var err error
			if s, err = n.dial(); err != nil {
				n.downErr.Store(&err)
				n.down.Store(true)
				n.fail(b, 0, err)
				continue
			}
		}
		s.send(b)
	}
}

func (n *bulkNode) dial() (*bulkSession, error) {
	t := n.run.t
	ctx, cancel := context.WithTimeout(n.run.ctx, t.cfg.timeout)
	defer cancel()
	c, err := t.dialNode(ctx, n.node)
	if err != nil {
		t.observe(n.node, err)
		return nil, err
	}
	s := &bulkSession{node: n, conn: c, r: bufio.NewReaderSize(c, 4<<10),
		inflight: make(chan *bulkBatch, t.cfg.bulkWindow), slots: make(chan struct{}, t.cfg.bulkWindow),
		readerDone: make(chan struct{})}
	go s.readReplies()
	return s, nil
}

// bulkSession is one connection of a bulk run: the writer sends batches,
// its reader goroutine reads their replies in the same order.
type bulkSession struct {
	node       *bulkNode
	conn       net.Conn
	r          *bufio.Reader
	inflight   chan *bulkBatch
	slots      chan struct{} // one per batch written and not yet answered
	readerDone chan struct{}
	broken     atomic.Bool
	brokenErr  atomic.Pointer[error]
}

// send waits until the session's window has room, writes b and queues it
// for the reader; a failed write fails b and breaks the session.
func (s *bulkSession) send(b *bulkBatch) {
	t := s.node.run.t
	s.slots <- struct{}{} // the reader frees it once b is answered or failed
	err := s.conn.SetWriteDeadline(time.Now().Add(t.cfg.timeout))
	if err == nil {
		_, err = s.conn.Write(b.buf)
	}
	if err != nil {
		s.breakWith(err)
		s.node.fail(b, 0, err)
		<-s.slots
		return
	}
	t.cold.bulkSent.Add(int64(len(b.keys)))
	t.cold.bulkBatches.Add(1)
	s.node.node.stats.requests.Add(1)
	s.inflight <- b
}

// breakWith records why the session is unusable and closes its connection,
// which also unblocks its reader. The failure counts towards the node's
// health, as an operation's would.
func (s *bulkSession) breakWith(err error) {
	if s.broken.CompareAndSwap(false, true) {
		s.brokenErr.Store(&err)
		s.conn.Close()
		s.node.run.t.observe(s.node.node, err)
	}
}

// close waits for the reader to answer or fail every batch sent, then
// closes the connection.
func (s *bulkSession) close() {
	close(s.inflight)
	<-s.readerDone
	s.conn.Close()
}

func (s *bulkSession) readReplies() {
	defer close(s.readerDone)
	read := s.readMetaBatch
	if s.node.proto == protoClassic {
		read = s.readClassicBatch
	}
	for b := range s.inflight {
		if s.broken.Load() {
			s.node.fail(b, 0, *s.brokenErr.Load())
		} else if err := read(b); err != nil {
			s.breakWith(err)
			// read reported the keys it could attribute.
		}
		<-s.slots
	}
}

// readMetaBatch reads b's replies up to MN and reports every key of b. On
// a read or protocol error it reports the keys whose fate it does not know
// as failed, and returns the error.
func (s *bulkSession) readMetaBatch(b *bulkBatch) error {
	t, nd, run := s.node.run.t, s.node.node, s.node.run
	var (
		errs    []error // errs[i] is key i's outcome; nil slice while all succeed
		settled = -1    // every command up to here is accounted for
		unowned error   // a server error not yet tied to a command
	)
	mark := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(b.keys))
		}
		errs[i] = err
	}
	// blame fails the commands a server error could belong to: those after
	// the last reply tied to a command, and before index end.
	blame := func(end int) {
		if unowned == nil {
			return
		}
		err := unowned
		if serverTooLarge(err) {
			err = t.tooLarge("add bulk", err)
		} else {
			err = t.nodeFail("add bulk", nd, err)
		}
		for i := settled + 1; i < end; i++ {
			mark(i, err)
		}
		unowned = nil
	}
	finish := func(end int, cause error) {
		for i, k := range b.keys {
			switch {
			case i >= end:
				run.done(k, cause)
			case errs != nil:
				run.done(k, errs[i])
			default:
				run.done(k, nil)
			}
		}
		b.release()
	}
	if err := s.conn.SetReadDeadline(time.Now().Add(run.replyTimeout)); err != nil {
		finish(0, t.nodeFail("add bulk", nd, err))
		return err
	}
	for {
		line, err := metaLine(s.r)
		if err != nil {
			blame(len(b.keys))
			finish(settled+1, t.nodeFail("add bulk", nd, err))
			return err
		}
		code, rest, _ := bytes.Cut(line, []byte(" "))
		switch string(code) {
		case "MN":
			blame(len(b.keys))
			finish(len(b.keys), nil)
			return nil
		case "NS", "EX", "NF", "HD":
			i, ok := opaqueOf(rest, len(b.keys))
			if !ok {
				err := fmt.Errorf("reply %q carries no opaque of this batch", line)
				blame(len(b.keys))
				finish(settled+1, t.nodeFail("add bulk", nd, err))
				return err
			}
			blame(i)
			switch string(code) {
			case "NS":
				t.stats.notStored.Add(1)
				mark(i, errNotStored)
			case "EX", "NF":
				mark(i, t.nodeFail("add bulk", nd, fmt.Errorf("unexpected reply %q", line)))
			}
			settled = i
		case "SERVER_ERROR":
			unowned = errors.Join(unowned, fmt.Errorf("%s", line))
		default:
			// CLIENT_ERROR or ERROR: the server no longer reads our stream
			// as we wrote it. Nothing after this can be trusted.
			err := fmt.Errorf("unexpected reply %q", line)
			blame(len(b.keys))
			finish(settled+1, t.nodeFail("add bulk", nd, err))
			return err
		}
	}
}

// opaqueOf finds the O<n> token among a reply's flags and checks that n is
// a command of a batch of size n.
func opaqueOf(flags []byte, size int) (int, bool) {
	for len(flags) > 0 {
		var tok []byte
		tok, flags, _ = bytes.Cut(flags, []byte(" "))
		if len(tok) > 1 && tok[0] == 'O' {
			i, err := strconv.Atoi(string(tok[1:]))
			return i, err == nil && i >= 0 && i < size
		}
	}
	return 0, false
}
