package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server answers memcached's text and meta protocols on its listeners and
// serves each command through its Router. Its methods are safe for
// concurrent use; every goroutine it starts ends by Shutdown or Close.
type Server struct {
	router *Router
	cfg    config
	locks  keyLocks
	stats  serverStats
	start  time.Time

	ctx    context.Context // the requests' parent; ends on Close
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	draining  atomic.Bool
	wg        sync.WaitGroup // Serve loops and connections
}

// New returns a Server over router.
func New(router *Router, opts ...Option) (*Server, error) {
	if router == nil {
		return nil, fmt.Errorf("%w: nil router", ErrInvalidOption)
	}
	cfg := defaultConfig()
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	s := &Server{
		router:    router,
		cfg:       cfg,
		start:     time.Now(),
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// ErrServerClosed then. Serve closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.draining.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors, or a passing fault: wait and
				// try again rather than spin or give up.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.stats.acceptErrors.Add(1)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("serve: accept: %w", err)
		}
		backoff = 0
		s.accept(nc)
	}
}

// accept starts serving nc, or refuses it when the server is full.
func (s *Server) accept(nc net.Conn) {
	s.mu.Lock()
	if s.draining.Load() || len(s.conns) >= s.cfg.maxConns {
		s.mu.Unlock()
		s.stats.rejectedConns.Add(1)
		// memcached's words, so that a client's log says what happened.
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write([]byte("SERVER_ERROR Too many open connections\r\n"))
		nc.Close()
		return
	}
	c := newConn(s, nc)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.stats.totalConns.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
		c.serve()
	}()
}

// Shutdown stops accepting, lets every connection finish the commands it
// has received (those already read, pipelined ones included), then closes
// it. It returns when every connection is closed, or when ctx ends, in
// which case the rest are closed at once and ctx's error returned. The
// backends stay open: they are the caller's to close afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.wake()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, cancelling the
// commands in flight, and waits for their goroutines to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.draining.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// Conns returns how many client connections are open.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
