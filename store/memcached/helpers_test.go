package memcached

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain fails the run if a goroutine of this package, of its wire
// layer or of gomemcache outlives the tests: Close must have stopped a
// Tier's health and discovery goroutines and its connections' readers,
// and GetMulti must have waited for every per-node goroutine it started.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(2 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func leakedGoroutines(wait time.Duration) string {
	deadline := time.Now().Add(wait)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		// The first goroutine is this one, running TestMain.
		for _, g := range strings.Split(string(buf), "\n\n")[1:] {
			if strings.Contains(g, "gomemcache") || strings.Contains(g, "tiercache/store/memcached.") ||
				strings.Contains(g, "tiercache/store/memcached/internal/wire.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metaTTL asks memcached, with the meta protocol's "mg key t", how many
// seconds wireKey has left: -1 for never, or an error line when the key is
// absent. It lets tests check the expiration that was sent without
// sleeping until it passes.
func metaTTL(t testing.TB, addr, wireKey string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "mg %s t\r\n", wireKey)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// fakeServer is an in-process TCP server on loopback that misbehaves on
// purpose, to produce the faults a real memcached will not produce on cue.
// handle is called for each connection; the connection is closed when it
// returns, and everything stops when the test ends.
type fakeServer struct {
	addr     string
	accepted chan struct{}
}

func startFakeServer(t testing.TB, handle func(c net.Conn, r *bufio.Reader)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{addr: ln.Addr().String(), accepted: make(chan struct{}, 100)}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			conns = append(conns, c)
			mu.Unlock()
			select {
			case fs.accepted <- struct{}{}:
			default:
			}
			wg.Go(func() {
				defer c.Close()
				handle(c, bufio.NewReader(c))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return fs
}

// readLines reads command lines until the connection ends, calling reply
// for each.
func readLines(r *bufio.Reader, reply func(line string)) {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		reply(strings.TrimRight(line, "\r\n"))
	}
}

// hungTier returns a Tier over one node, at addr, that reads every
// command and answers none; the Tier fails a node on its first failure and
// times out in 50ms. It is closed when the test ends.
func hungTier(t *testing.T) (tr *Tier, addr string) {
	t.Helper()
	fs := startFakeServer(t, func(conn net.Conn, r *bufio.Reader) {
		readLines(r, func(string) {})
	})
	tr, err := New([]string{fs.addr}, WithFailureLimit(1), WithTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, fs.addr
}

// openConns returns how many connections tr has open to its nodes.
func openConns(tr *Tier) int {
	n := 0
	for _, nd := range tr.members.current.Load().nodes() {
		n += nd.pool.Stats().Open
	}
	return n
}

// openConnsTo returns how many connections tr has open to addr, counting
// nodes that have left the membership (retired pools must be empty).
func openConnsTo(tr *Tier, addr string) int {
	for _, nd := range tr.members.current.Load().nodes() {
		if nd.key == addr {
			return nd.pool.Stats().Open
		}
	}
	return 0
}
