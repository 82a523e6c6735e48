package memcached

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"

	"github.com/tiercache/tiercache/tier"
)

// connSet dials gomemcache's connections and remembers every one still
// open, so that Close can close them all. gomemcache's own Client.Close
// only reaches idle connections: one in use while Close runs would go back
// to the pool afterwards and stay open for the life of the process. After
// Close, connSet refuses to dial, so nothing can reopen.
//
// It also counts the connections open to each address, for the per-node
// stats, and can close those of one address when its node leaves the
// cluster.
//
// connSet is safe for concurrent use.
type connSet struct {
	dialer net.Dialer

	mu     sync.Mutex
	closed bool
	open   map[*trackedConn]struct{}
	byAddr map[string]int
}

func newConnSet() *connSet {
	return &connSet{open: make(map[*trackedConn]struct{}), byAddr: make(map[string]int)}
}

// DialContext is installed as the gomemcache Client's DialContext. ctx
// carries gomemcache's dial timeout.
func (s *connSet) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if s.isClosed() {
		return nil, tier.ErrClosed
	}
	nc, err := s.dialer.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: nc, set: s, addr: address}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		nc.Close()
		return nil, tier.ErrClosed
	}
	s.open[tc] = struct{}{}
	s.byAddr[address]++
	return tc, nil
}

// openTo returns how many connections to address are open.
func (s *connSet) openTo(address string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byAddr[address]
}

// closeAddr closes every open connection to address, idle or in use.
func (s *connSet) closeAddr(address string) {
	s.mu.Lock()
	var doomed []*trackedConn
	for c := range s.open {
		if c.addr == address {
			doomed = append(doomed, c)
		}
	}
	s.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
}

func (s *connSet) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close closes every open connection, idle or in use, and stops further
// dials. Closing it again does nothing.
func (s *connSet) Close() {
	s.mu.Lock()
	open := s.open
	s.open = nil
	s.byAddr = nil
	s.closed = true
	s.mu.Unlock()
	for c := range open {
		c.Close()
	}
}

func (s *connSet) forget(c *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.open[c]; !ok {
		return // closed by Close, which cleared the counts
	}
	delete(s.open, c)
	if s.byAddr[c.addr]--; s.byAddr[c.addr] == 0 {
		delete(s.byAddr, c.addr)
	}
}

// trackedConn is a net.Conn that leaves its connSet when closed.
type trackedConn struct {
	net.Conn
	set  *connSet
	addr string
	once sync.Once
	err  error
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.set.forget(c)
		c.err = c.Conn.Close()
	})
	return c.err
}

// retried runs op, and runs it again while it fails on a connection the
// server had already closed. gomemcache keeps idle connections in a pool;
// after memcached restarts, the first use of each pooled connection fails
// (EOF, reset, broken pipe) although the new server is up. gomemcache drops
// a connection that failed, so each retry takes the next pooled one or
// dials afresh; a stale connection fails at once, and there are at most
// the pool's size of them per node. Timeouts are not retried: a hung server
// would cost every caller twice.
func retried[T any](t *Tier, op func() (T, error)) (T, error) {
	v, err := op()
	for i := 0; i <= t.maxIdleConns && staleConn(err) && !t.closed.Load(); i++ {
		t.stats.retries.Add(1)
		v, err = op()
	}
	return v, err
}

// staleConn reports whether err is the peer having closed the connection.
func staleConn(err error) bool {
	return err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}
