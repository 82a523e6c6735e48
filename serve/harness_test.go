package serve

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// ioTimeout bounds every read of a test client: generous, for a loaded
// machine; a correct server answers in microseconds.
const ioTimeout = 20 * time.Second

// startServer serves router on a loopback port until the test ends.
// TestMain checks that the servers' Shutdowns leave no goroutine behind.
func startServer(t *testing.T, router *Router, opts ...Option) (*Server, string) {
	t.Helper()
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
	})
	return srv, ln.Addr().String()
}

// TestMain runs the tests, then fails the run when goroutines of this
// package's code are still alive once every server has shut down. The
// check runs after all tests rather than per test: parallel tests each
// have servers of their own, so a count taken during one test includes
// the others'.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if left := serverGoroutines(ioTimeout); left != "" {
			fmt.Fprintf(os.Stderr, "goroutines of the server left after every test:\n%s", left)
			code = 1
		}
	}
	os.Exit(code)
}

// serverGoroutines waits up to d for every goroutine running this
// package's non-test code to end, and returns the stacks of those left.
func serverGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var left []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "tiercache/serve.") && !strings.Contains(g, "serve.serverGoroutines") && !strings.Contains(g, "_test.go") {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return strings.Join(left, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
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
