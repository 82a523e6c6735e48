package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tiercache/tiercache/tier"
)

// DefaultSniffTimeout is how long the stats port waits for a client's
// first bytes before it takes the client for a raw collector. An HTTP
// client writes its request as soon as it is connected; a twemproxy
// collector (telegraf, Diamond, nc) writes nothing and waits for the dump.
// A browser may open its connection a little before it writes (chromium
// under load was seen to take more than 100ms), and a collector that
// polls every ten seconds or more does not mind a second's wait.
const DefaultSniffTimeout = time.Second

// rawWriteTimeout bounds writing the dump to a raw client that stops
// reading.
const rawWriteTimeout = 5 * time.Second

// StatsServer serves the stats port in both of its languages, as
// twemproxy's collectors and browsers expect: a client that sends nothing
// within the sniff timeout, or whose first bytes are not an HTTP request,
// gets the stats JSON at once and the connection closes (nutcracker's
// behaviour); an HTTP request goes to the handler. Its methods are safe
// for concurrent use.
type StatsServer struct {
	http  *http.Server
	dump  func() ([]byte, error)
	sniff time.Duration

	mu      sync.Mutex
	lns     []net.Listener
	routes  sync.WaitGroup
	closing chan struct{}
	once    sync.Once
}

// NewStatsServer returns the stats port of cache: HTTP requests are
// answered by Handler, raw connections with the stats JSON.
func NewStatsServer(cache *tier.Cache, reg prometheus.Gatherer) *StatsServer {
	stats := NewStatsHandler(cache)
	return newStatsServer(handler(stats, reg), stats.JSON)
}

func newStatsServer(h http.Handler, dump func() ([]byte, error)) *StatsServer {
	return &StatsServer{
		http:    &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second},
		dump:    dump,
		sniff:   DefaultSniffTimeout,
		closing: make(chan struct{}),
	}
}

// Serve accepts connections on ln until Shutdown, and returns
// http.ErrServerClosed then, like http.Server.Serve.
func (s *StatsServer) Serve(ln net.Listener) error {
	httpLn := &handoff{addr: ln.Addr(), conns: make(chan net.Conn), closed: make(chan struct{})}
	s.mu.Lock()
	select {
	case <-s.closing:
		s.mu.Unlock()
		return http.ErrServerClosed
	default:
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()

	served := make(chan error, 1)
	go func() { served <- s.http.Serve(httpLn) }()
	var err error
	for {
		var conn net.Conn
		conn, err = ln.Accept()
		if err != nil {
			break
		}
		s.routes.Add(1)
		go func() {
			defer s.routes.Done()
			s.route(conn, httpLn)
		}()
	}
	select {
	case <-s.closing:
		err = http.ErrServerClosed
	default:
		_ = httpLn.Close()
	}
	s.routes.Wait()
	if herr := <-served; !errors.Is(herr, http.ErrServerClosed) && err == nil {
		err = herr
	}
	return err
}

// route reads the client's first bytes and hands the connection to the
// HTTP server, or writes the dump and closes it.
func (s *StatsServer) route(conn net.Conn, httpLn *handoff) {
	buf := make([]byte, 512)
	_ = conn.SetReadDeadline(time.Now().Add(s.sniff))
	n, err := conn.Read(buf)
	_ = conn.SetReadDeadline(time.Time{})
	var timeout net.Error
	switch {
	case n > 0 && looksLikeHTTP(buf[:n]):
		httpLn.offer(&sniffedConn{Conn: conn, first: buf[:n]})
	case n > 0 || errors.As(err, &timeout) && timeout.Timeout():
		s.writeDump(conn)
	default:
		_ = conn.Close() // gone before it said anything
	}
}

func (s *StatsServer) writeDump(conn net.Conn) {
	defer conn.Close()
	body, err := s.dump()
	if err != nil {
		return
	}
	_ = conn.SetWriteDeadline(time.Now().Add(rawWriteTimeout))
	_, _ = conn.Write(body)
}

// looksLikeHTTP is true when b opens with an upper-case token, as every
// HTTP method does; a raw client that sends anything else (a newline, a
// "stats" command) gets the dump.
func looksLikeHTTP(b []byte) bool {
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
		case c == ' ' && i > 0:
			return true
		default:
			return false
		}
	}
	return len(b) > 0
}

// Shutdown stops accepting connections, waits for those being routed, and
// shuts the HTTP server down as http.Server.Shutdown does.
func (s *StatsServer) Shutdown(ctx context.Context) error {
	s.once.Do(func() { close(s.closing) })
	s.mu.Lock()
	lns := s.lns
	s.lns = nil
	s.mu.Unlock()
	var errs []error
	for _, ln := range lns {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.http.Shutdown(ctx))
	return errors.Join(errs...)
}

// handoff is the listener the HTTP server accepts the sniffed connections
// from.
type handoff struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (h *handoff) offer(c net.Conn) {
	select {
	case h.conns <- c:
	case <-h.closed:
		_ = c.Close()
	}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.closed:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() { close(h.closed) })
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }

// sniffedConn gives back the bytes read to tell HTTP from raw.
type sniffedConn struct {
	net.Conn
	first []byte
}

func (c *sniffedConn) Read(b []byte) (int, error) {
	if len(c.first) > 0 {
		n := copy(b, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
