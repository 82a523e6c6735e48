package serve

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// gatedBackend is a plain cache whose Get of the key "slow" waits for
// release: a command in flight, on cue.
type gatedBackend struct {
	*Plain
	entered chan struct{}
	release chan struct{}
}

func (g *gatedBackend) Get(ctx context.Context, keys []string) (map[string]Item, error) {
	for _, k := range keys {
		if k == "slow" {
			g.entered <- struct{}{}
			select {
			case <-g.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return map[string]Item{"slow": {Value: []byte("done"), CAS: 1}}, nil
		}
	}
	return g.Plain.Get(ctx, keys)
}

// newGatedRouter is a Router whose plain cache is a gatedBackend.
func newGatedRouter(t *testing.T) (*gatedBackend, *Router) {
	t.Helper()
	plain, err := NewPlain(newMemTier())
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedBackend{Plain: plain, entered: make(chan struct{}), release: make(chan struct{})}
	router, err := NewRouter(g)
	if err != nil {
		t.Fatal(err)
	}
	return g, router
}

func TestShutdownFinishesCommandsInFlight(t *testing.T) {
	t.Parallel()
	g, router := newGatedRouter(t)
	srv, err := New(router)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	busy, idle := dial(t, addr), dial(t, addr)
	idle.roundTrip("version\r\n")
	// Two commands pipelined: the first is in flight when the shutdown
	// begins, the second already sent; both are answered.
	busy.send("get slow\r\nget other\r\n")
	<-g.entered
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	if got := idle.readToClose(); got != "" {
		t.Errorf("idle connection: %q before the close", got)
	}
	// No new connection is served once the shutdown began.
	deadline := time.Now().Add(ioTimeout)
	for {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		nc.SetReadDeadline(time.Now().Add(ioTimeout))
		n, _ := nc.Read(make([]byte, 1))
		nc.Close()
		if n == 0 {
			break // accepted by the kernel's backlog, closed unanswered
		}
		if time.Now().After(deadline) {
			t.Fatal("new connections still served during the shutdown")
		}
	}
	close(g.release)
	if got, want := busy.readToClose(), lines("VALUE slow 0 4", "done", "END", "END"); got != want {
		t.Errorf("in-flight commands: %q, want %q", got, want)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != ErrServerClosed {
		t.Errorf("Serve: %v, want ErrServerClosed", err)
	}
}

func TestShutdownDeadlineClosesTheRest(t *testing.T) {
	t.Parallel()
	g, router := newGatedRouter(t)
	srv, addr := startServer(t, router)
	c := dial(t, addr)
	c.send("get slow\r\n")
	<-g.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The backend is stuck: the shutdown gives up at once, closes the
	// connection, and cancels the command's context, which unblocks it.
	if err := srv.Shutdown(ctx); err != context.Canceled {
		t.Fatalf("Shutdown with an ended context: %v", err)
	}
	if got := c.readToClose(); got != "" {
		t.Fatalf("a connection closed by a forced shutdown got %q", got)
	}
}

// TestThousandsOfConnections holds 2,000 client connections open at once,
// as PHP-FPM's workers do, each answered.
func TestThousandsOfConnections(t *testing.T) {
	t.Parallel()
	router, _ := newMemRouter(t)
	srv, addr := startServer(t, router)
	const n = 2000
	conns := make([]*client, n)
	for i := range conns {
		conns[i] = dial(t, addr)
	}
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.send("set k 0 0 1\r\nx\r\nget k\r\nmn\r\n")
			c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
			buf := make([]byte, 64)
			want := lines("STORED", "VALUE k 0 1", "x", "END", "MN")
			got := 0
			for got < len(want) {
				m, err := c.nc.Read(buf[got:])
				if err != nil {
					break
				}
				got += m
			}
			if string(buf[:got]) != want {
				errs <- string(buf[:got])
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("a connection got %q", e)
	}
	if got := srv.Conns(); got != n {
		t.Fatalf("%d connections open, want %d", got, n)
	}
}
