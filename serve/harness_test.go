package serve

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// ioTimeout bounds every read of a test client: generous, for a loaded
// machine; a correct server answers in microseconds.
const ioTimeout = 20 * time.Second

// startServer serves router on a loopback port until the test ends, and
// checks then that Shutdown leaves no goroutine behind.
func startServer(t *testing.T, router *Router, opts ...Option) (*Server, string) {
	t.Helper()
	before := runtime.NumGoroutine()
	srv, err := New(router, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		waitGoroutines(t, before)
	})
	return srv, ln.Addr().String()
}

// waitGoroutines fails the test when the goroutines do not come back to
// at most n (the ones of the Go runtime's network poller take a moment).
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines left, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
			return
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// newMemRouter is a Router whose plain cache is one in-process tier.
func newMemRouter(t testing.TB, opts ...RouterOption) (*Router, *memTier) {
	t.Helper()
	mem := newMemTier()
	plain, err := NewPlain(mem)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter(plain, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r, mem
}

// client is a raw protocol client for the tests.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *client) send(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// roundTrip sends req followed by "mn\r\n" and returns everything the
// server answered before its "MN\r\n": the whole reply to req, however
// many lines it has.
func (c *client) roundTrip(req string) string {
	c.t.Helper()
	c.send(req + "mn\r\n")
	return c.readToMN()
}

// readToMN returns what the server answers up to its "MN\r\n".
func (c *client) readToMN() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	var out bytes.Buffer
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reply: %v after %q", err, out.String())
		}
		if line == "MN\r\n" {
			return out.String()
		}
		out.WriteString(line)
	}
}

// readToClose returns what the server sends until it closes the
// connection.
func (c *client) readToClose() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	b, err := io.ReadAll(c.r)
	if err != nil {
		c.t.Fatalf("read to close: %v after %q", err, b)
	}
	return string(b)
}

// lines joins protocol lines with "\r\n" after each.
func lines(ls ...string) string { return strings.Join(ls, "\r\n") + "\r\n" }
