package wire

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Request is a run of commands written at once, and the function that
// reads their replies.
type Request struct {
	// Buf is written as it is.
	Buf []byte
	// Read reads exactly the replies Buf asks for. It runs on the
	// connection's reader goroutine. Any error it returns breaks the
	// connection: the replies behind can no longer be matched. A reply
	// that refuses a command (SERVER_ERROR, NOT_STORED...) is an answer,
	// for Read to report some other way.
	Read func(*Reader) error
	// Exclusive sends the request alone: after every request before it on
	// its connection is answered, and with nothing written behind it until
	// it is. For commands a server may hang up on (a proxy that does not
	// know them), so that no other request is lost with the connection.
	Exclusive bool
	// Probe marks a request that asks about the node rather than uses it:
	// it goes through while the Gate refuses, and its outcome is not
	// reported to the health hook.
	Probe bool
}

// Config configures a Pool.
type Config struct {
	Network, Addr string
	// Conns is the most connections the pool keeps open (at least 1).
	Conns int
	// Depth is how many requests a connection has in flight at most (at
	// least 1): the pool admits Conns*Depth requests at a time, and
	// callers beyond that wait their turn.
	Depth int
	// Timeout bounds a dial, a write, and the wait for a reply counted from
	// when the request was written or the reply before it was read,
	// whichever is later: the node is given Timeout to show progress.
	Timeout time.Duration
	// Dial opens connections; nil is a net.Dialer's DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Gate, when set, is asked before a request that is not a Probe is
	// written; a non-nil error fails the request with it, unsent. The
	// tier uses it to stop sending to a node marked down.
	Gate func() error
	// Report, when set, is told the outcome of every request that reached
	// the node, from the goroutine that saw it: nil for an answer, or the
	// node's own failure (a refused or timed-out dial, a failed write, a
	// reply that did not come or did not parse). Waiting for room, a
	// caller giving up, requests lost behind another's failure, and an
	// idle connection the server had closed are not reported.
	Report func(err error)
	// Restarted, when set, is called when a request sent again, because
	// the server had closed the connection it went on while it sat idle,
	// is answered on a fresh one: the server restarted, perhaps as another
	// version or with other settings.
	Restarted func()
}

// Pool is the bounded set of connections to one node. It is safe for
// concurrent use.
type Pool struct {
	cfg    Config
	slots  chan struct{} // one per request admitted and not yet answered
	done   chan struct{} // closed by Close
	ctx    context.Context
	cancel context.CancelFunc // ends the dials in progress, at Close

	mu     sync.Mutex
	conns  []*conn
	closed bool
	wg     sync.WaitGroup // dial and reader goroutines

	dials, dialErrors, retries atomic.Int64
}

// Stats are a Pool's counts.
type Stats struct {
	Open       int   // connections open now
	Dials      int64 // connections opened
	DialErrors int64 // dials that failed
	Retries    int64 // requests sent again after a stale connection
}

// NewPool returns a Pool; it dials nothing until the first request.
func NewPool(cfg Config) *Pool {
	cfg.Conns, cfg.Depth = max(cfg.Conns, 1), max(cfg.Depth, 1)
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	p := &Pool{cfg: cfg, slots: make(chan struct{}, cfg.Conns*cfg.Depth), done: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

// Stats returns the pool's counts.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	open := 0
	for _, c := range p.conns {
		if c.dialed.Load() {
			open++
		}
	}
	p.mu.Unlock()
	return Stats{Open: open, Dials: p.dials.Load(), DialErrors: p.dialErrors.Load(), Retries: p.retries.Load()}
}

// Close closes every connection, idle or in use; the requests in flight
// fail with ErrClosed, and so does every request after. It waits for the
// reader goroutines. Closing twice is not an error.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	p.cancel()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.kill(ErrClosed, nil)
	}
	p.wg.Wait()
}

// Do sends req and waits for its replies to be read. A request that fails
// on a connection the server had closed while it sat idle (memcached
// restarted) is sent again, on another connection, up to once per
// connection the pool may hold. ctx bounds the waiting: once it ends, Do
// returns its error, and the request, if written, is still read by the
// connection so that the stream stays in step.
func (p *Pool) Do(ctx context.Context, req *Request) error {
	for attempt := 0; ; attempt++ {
		c := p.send(ctx, req, true)
		if c.selfRead {
			c.conn.readOwn(c)
		}
		err := c.Wait(ctx)
		if err == nil && attempt > 0 && p.cfg.Restarted != nil {
			// A fresh connection answered where a pooled one had been
			// closed: the server restarted. (A proxy that hangs up on a
			// command hangs up on the fresh connection too.)
			p.cfg.Restarted()
		}
		if err == nil || !c.reused || !Stale(err) || attempt >= p.cfg.Conns || ctx.Err() != nil {
			return err
		}
		p.retries.Add(1)
	}
}

// Call is a request sent, whose replies are being read.
type Call struct {
	req    *Request
	done   chan struct{}
	err    error
	reused bool // it went on a connection that had answered before
	conn   *conn
	// selfRead is set for a call of Do written on a connection with
	// nothing else in flight: its caller reads the reply itself, as a
	// client without pipelining would, instead of waking the reader
	// goroutine to read it and then being woken in turn. The reader
	// reads the calls written behind it once it is read.
	selfRead bool
}

// Wait waits for the call's replies to be read, or for ctx to end, and
// returns the call's error or ctx's.
func (c *Call) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	default:
	}
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Send writes req on one of the pool's connections, without waiting for
// its replies (see Call.Wait): a goroutine can have many requests in
// flight at once, pipelined. It waits, with ctx, for room among the
// requests in flight and for a turn to write. Errors are the Call's.
func (p *Pool) Send(ctx context.Context, req *Request) *Call { return p.send(ctx, req, false) }

// send is Send; self asks for the reply to be read by the caller (see
// Call.selfRead) when the connection has nothing else in flight.
func (p *Pool) send(ctx context.Context, req *Request, self bool) *Call {
	call := &Call{req: req, done: make(chan struct{})}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return call.fail(ctx.Err())
	case <-p.done:
		return call.fail(ErrClosed)
	}
	for {
		if !req.Probe && p.cfg.Gate != nil {
			if err := p.cfg.Gate(); err != nil {
				<-p.slots
				return call.fail(err)
			}
		}
		c, err := p.pick(ctx, req.Probe)
		if err != nil {
			<-p.slots
			return call.fail(err)
		}
		sent, err := c.send(ctx, call, self && !req.Exclusive)
		if sent {
			return call
		}
		c.load.Add(-1)
		if err != nil {
			<-p.slots
			return call.fail(err)
		}
		// The connection broke before our turn came: take another.
	}
}

func (c *Call) fail(err error) *Call {
	c.err = err
	close(c.done)
	return c
}

// pick returns the connection for the next request, with its load
// counted: the least loaded, or a new one while the pool has room and
// every connection is busy. A new connection is dialed by a goroutine of
// the pool, bounded by the timeout, not by the caller's context: the
// caller only waits for it. A dial that fails is reported, and the callers
// waiting for it try again.
func (p *Pool) pick(ctx context.Context, probe bool) (*conn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		var best *conn
		for _, c := range p.conns {
			if best == nil || c.load.Load() < best.load.Load() {
				best = c
			}
		}
		dialing := false
		if best == nil || best.load.Load() > 0 && len(p.conns) < p.cfg.Conns {
			best, dialing = newConn(p), true
			p.conns = append(p.conns, best)
			p.wg.Add(1)
		}
		best.load.Add(1)
		p.mu.Unlock()
		if dialing {
			go p.dial(best, probe)
		}
		select {
		case <-best.ready:
		case <-ctx.Done():
			best.load.Add(-1)
			return nil, ctx.Err()
		}
		if best.dialErr != nil {
			best.load.Add(-1)
			if dialing {
				return nil, best.dialErr
			}
			continue // its dialer's failure, reported once; try for ourselves
		}
		return best, nil
	}
}

// dial connects c and starts its reader, or takes it out of the pool. It
// runs on its own goroutine, counted in wg.
func (p *Pool) dial(c *conn, probe bool) {
	defer p.wg.Done()
	p.dials.Add(1)
	dctx, cancel := context.WithTimeout(p.ctx, p.cfg.Timeout)
	nc, err := p.cfg.Dial(dctx, p.cfg.Network, p.cfg.Addr)
	cancel()
	p.mu.Lock()
	if err == nil && p.closed {
		nc.Close()
		err = ErrClosed
	}
	if err != nil {
		p.removeLocked(c)
		closed := p.closed
		p.mu.Unlock()
		if !closed {
			p.dialErrors.Add(1)
			if !probe {
				p.report(err)
			}
		}
		c.dialErr = err
		close(c.ready)
		return
	}
	c.nc, c.r = nc, NewReader(lookAgain{nc, p.cfg.Timeout})
	c.dialed.Store(true)
	p.wg.Add(1)
	p.mu.Unlock()
	close(c.ready)
	go c.readLoop()
}

func (p *Pool) remove(c *conn) {
	p.mu.Lock()
	p.removeLocked(c)
	p.mu.Unlock()
}

func (p *Pool) removeLocked(c *conn) {
	for i, x := range p.conns {
		if x == c {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			return
		}
	}
}

func (p *Pool) report(err error) {
	if p.cfg.Report != nil {
		p.cfg.Report(err)
	}
}
