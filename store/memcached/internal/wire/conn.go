package wire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one connection of a Pool. Callers write their requests on it in
// turn (wlock), each appending its call to calls in the order written;
// the reader goroutine takes the calls in that order and reads their
// replies.
type conn struct {
	p *Pool

	ready   chan struct{} // closed once the dial is over
	dialErr error         // set before ready is closed
	dialed  atomic.Bool
	nc      net.Conn // set before ready is closed
	r       *Reader

	wlock chan struct{} // held (one token) while a caller writes
	rlock chan struct{} // held while a reply is read, by the reader or a self-reading caller
	load  atomic.Int32  // calls that picked this connection and are not done
	used  atomic.Bool   // a request was answered on it

	mu       sync.Mutex
	broken   bool
	cause    error      // why it broke
	calls    chan *Call // written and not yet read; closed when it breaks
	inflight int        // calls pushed and not finished
	idle     chan struct{}
}

func newConn(p *Pool) *conn {
	return &conn{p: p, ready: make(chan struct{}), wlock: make(chan struct{}, 1), rlock: make(chan struct{}, 1),
		calls: make(chan *Call, cap(p.slots))}
}

// send writes call's request and queues it for the reader. sent false with
// a nil error means the connection broke before the caller's turn: it
// should pick another.
func (c *conn) send(ctx context.Context, call *Call, self bool) (sent bool, err error) {
	select {
	case c.wlock <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	unlock := func() { <-c.wlock }
	req := call.req
	if req.Exclusive {
		if err := c.drain(ctx); err != nil {
			unlock()
			return false, err
		}
	}
	c.mu.Lock()
	broken := c.broken
	c.mu.Unlock()
	if broken {
		unlock()
		return false, nil
	}
	call.reused = c.used.Load()
	err = c.nc.SetWriteDeadline(time.Now().Add(c.p.cfg.Timeout))
	if err == nil {
		_, err = c.nc.Write(req.Buf)
	}
	if err != nil {
		c.kill(err, call)
		unlock()
		return false, err
	}
	c.mu.Lock()
	if c.broken {
		err = fmt.Errorf("%w: %w", ErrConnLost, c.cause)
		c.mu.Unlock()
		unlock()
		return false, err
	}
	call.conn = c
	c.inflight++
	if self && c.inflight == 1 {
		// Nothing in flight: the reader is idle, and the caller can read
		// the reply itself, unless the reader is just about to finish.
		select {
		case c.rlock <- struct{}{}:
			call.selfRead = true
		default:
		}
	}
	if !call.selfRead {
		c.calls <- call // never blocks: the pool admits at most cap(calls)
	}
	c.mu.Unlock()
	if req.Exclusive {
		<-call.done // bounded by the timeout: the reader's deadline
	}
	unlock()
	return true, nil
}

// lookAgain reads from a connection whose read deadline may have passed
// while this process was not running (a GC pause, a CPU-starved machine)
// rather than while the node was silent: a read that times out is tried
// once more, briefly, and returns the data the node had sent meanwhile.
// Only a node that has still sent nothing has timed out.
type lookAgain struct {
	net.Conn
	timeout time.Duration
}

func (c lookAgain) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		if c.Conn.SetReadDeadline(time.Now().Add(min(c.timeout/10, 10*time.Millisecond))) == nil {
			n, err = c.Conn.Read(p)
		}
	}
	return n, err
}

// drain waits until every call on the connection is finished. The caller
// holds wlock, so none is added meanwhile.
func (c *conn) drain(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.inflight == 0 || c.broken {
			c.mu.Unlock()
			return nil
		}
		if c.idle == nil {
			c.idle = make(chan struct{})
		}
		idle := c.idle
		c.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readLoop reads the replies of the calls in the order they were written,
// until the connection breaks or the pool closes.
func (c *conn) readLoop() {
	defer c.p.wg.Done()
	for call := range c.calls {
		c.rlock <- struct{}{} // waits while a caller reads its own reply
		if !c.read(call) {
			return
		}
	}
}

// readOwn reads the reply of a call whose caller reads it itself.
func (c *conn) readOwn(call *Call) { c.read(call) }

// read reads call's replies, with rlock held, and finishes it. It reports
// whether the connection is still usable.
func (c *conn) read(call *Call) bool {
	// The node has Timeout from now, when the reply before was read (or
	// the request written, if later), to show progress.
	err := c.nc.SetReadDeadline(time.Now().Add(c.p.cfg.Timeout))
	if err == nil {
		err = call.req.Read(c.r)
	}
	if err != nil {
		if !c.kill(err, call) {
			err = fmt.Errorf("%w: %w", ErrConnLost, c.cause)
		}
		<-c.rlock
		c.finish(call, err)
		return false
	}
	c.used.Store(true)
	if !call.req.Probe {
		c.p.report(nil)
	}
	<-c.rlock
	c.finish(call, nil)
	return true
}

// reportFailure reports err, the failure that broke the connection while
// call was on it, as the node's, unless it is not: a probe's, or a stale
// connection's (an idle connection the server had closed; the request is
// tried again and that attempt counts).
func (c *conn) reportFailure(call *Call, err error) {
	var answered answeredError
	switch {
	case call.req.Probe || call.reused && Stale(err) || errors.Is(err, ErrClosed):
	case errors.As(err, &answered):
		c.p.report(nil)
	default:
		c.p.report(err)
	}
}

// finish completes call with err.
func (c *conn) finish(call *Call, err error) {
	c.mu.Lock()
	c.inflight--
	if c.inflight == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
	c.mu.Unlock()
	c.load.Add(-1)
	<-c.p.slots
	call.err = err
	close(call.done)
}

// kill breaks the connection with cause, the failure of call (nil when
// the pool closes): it reports the failure to the node's health first, so
// that a node marked down for it refuses the callers the break sends to
// another connection; then it closes the connection, takes it out of the
// pool, and fails the calls queued on it with ErrConnLost. It returns
// whether this kill broke it (false: it was broken already).
func (c *conn) kill(cause error, call *Call) bool {
	c.mu.Lock()
	if c.broken {
		c.mu.Unlock()
		return false
	}
	c.broken, c.cause = true, cause
	if call != nil {
		c.reportFailure(call, cause)
	}
	var lost []*Call
	for {
		select {
		case call := <-c.calls:
			lost = append(lost, call)
			continue
		default:
		}
		break
	}
	close(c.calls)
	if c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
	c.mu.Unlock()
	if c.nc != nil {
		c.nc.Close()
	}
	c.p.remove(c)
	for _, call := range lost {
		c.finish(call, fmt.Errorf("%w: %w", ErrConnLost, cause))
	}
	return true
}
