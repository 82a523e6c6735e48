package memcached

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
)

// faultBound is how long an operation on a broken node may take in these
// tests. The Tiers here use a 100ms timeout; the bound is generous so that
// a loaded machine does not make the tests flaky. What it catches is a hang.
const faultBound = 5 * time.Second

// allOps runs every operation once and returns their errors by name.
func allOps(tr *Tier) map[string]error {
	ctx := context.Background()
	e := tier.Entry{Value: []byte("v")}
	_, getErr := tr.Get(ctx, "k")
	_, multiErr := tr.GetMulti(ctx, []string{"k", "a b", strings.Repeat("x", 300)})
	return map[string]error{
		"Get":      getErr,
		"GetMulti": multiErr,
		"Set":      tr.Set(ctx, "k", e),
		"Add":      tr.Add(ctx, "k", e),
		"Delete":   tr.Delete(ctx, "k"),
	}
}

// wantUnavailable runs every operation and checks that each fails with
// ErrUnavailable, not a miss, within faultBound.
func wantUnavailable(t *testing.T, tr *Tier) {
	t.Helper()
	start := time.Now()
	for op, err := range allOps(tr) {
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, tier.ErrMiss) {
			t.Errorf("%s: %v, want ErrUnavailable", op, err)
		}
	}
	if d := time.Since(start); d > faultBound {
		t.Errorf("operations took %v, want under %v", d, faultBound)
	}
}

func TestServerKilled(t *testing.T) {
	t.Parallel()
	tr, mc := newTestTier(t, WithTimeout(100*time.Millisecond))
	ctx := context.Background()
	if err := tr.Set(ctx, "k", tier.Entry{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, tr, "k") // leaves a pooled connection to the dead server
	mc.Kill()

	wantUnavailable(t, tr)
	// Get and GetMulti fail on the network and mark the node down; Set,
	// Add and Delete are then answered without trying.
	c := tr.Counters()
	if c["errors"] != DefaultFailureLimit || c["node_down"] != 3 || c["ejections"] != 1 {
		t.Errorf("errors = %d, node_down = %d, ejections = %d; want %d, 3, 1",
			c["errors"], c["node_down"], c["ejections"], DefaultFailureLimit)
	}
}

func TestServerHung(t *testing.T) {
	t.Parallel()
	tr, mc := newTestTier(t, WithTimeout(100*time.Millisecond))
	mustSet(t, tr, "k")
	mc.Stop() // killed, stopped or not, when the test ends

	start := time.Now()
	_, err := tr.Get(context.Background(), "k")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get on a hung server: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > faultBound {
		t.Fatalf("Get on a hung server took %v", d)
	}
	if n := tr.Counters()["timeouts"]; n != 1 {
		t.Fatalf("timeouts = %d, want 1", n)
	}
}

func mustSet(t *testing.T, tr *Tier, key string) {
	t.Helper()
	if err := tr.Set(context.Background(), key, tier.Entry{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
}

// TestFakeServerFaults drives the Tier against servers that misbehave in
// ways a real memcached does not on cue. Every operation must fail with
// ErrUnavailable within the bound: no panic, no hang, no false hit.
func TestFakeServerFaults(t *testing.T) {
	t.Parallel()
	faults := map[string]func(c net.Conn, r *bufio.Reader){
		"refused":        nil, // nothing listens
		"closes at once": func(c net.Conn, r *bufio.Reader) {},
		"resets": func(c net.Conn, r *bufio.Reader) {
			r.ReadString('\n')
			c.(*net.TCPConn).SetLinger(0) // close with RST
		},
		"never answers": func(c net.Conn, r *bufio.Reader) {
			io.Copy(io.Discard, r)
		},
		"answers garbage": func(c net.Conn, r *bufio.Reader) {
			readLines(r, func(string) { io.WriteString(c, "GARBAGE\r\n") })
		},
		"answers half a line then stalls": func(c net.Conn, r *bufio.Reader) {
			r.ReadString('\n')
			io.WriteString(c, "VALUE k 29698 12")
			io.Copy(io.Discard, r)
		},
		"value shorter than declared": func(c net.Conn, r *bufio.Reader) {
			readLines(r, func(string) { io.WriteString(c, "VALUE k 29697 100 1\r\nshort\r\nEND\r\n") })
		},
		"server error": func(c net.Conn, r *bufio.Reader) {
			readLines(r, func(string) { io.WriteString(c, "SERVER_ERROR out of memory\r\n") })
		},
	}
	for name, handle := range faults {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			addr := ""
			if handle == nil {
				addr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			} else {
				addr = startFakeServer(t, handle).addr
			}
			tr, err := New([]string{addr}, WithTimeout(100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			wantUnavailable(t, tr)
		})
	}
}

// TestFakeServerWrongKey covers a server that answers a get with another
// key's item: gomemcache hands it back as if it were the one asked for.
func TestFakeServerWrongKey(t *testing.T) {
	t.Parallel()
	fs := startFakeServer(t, func(c net.Conn, r *bufio.Reader) {
		readLines(r, func(line string) {
			if strings.HasPrefix(line, "get ") {
				io.WriteString(c, "VALUE other 29697 11\r\n\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00v\r\nEND\r\n")
			}
		})
	})
	tr, err := New([]string{fs.addr}, WithTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Get(context.Background(), "k"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get: %v, want ErrUnavailable", err)
	}
	got, err := tr.GetMulti(context.Background(), []string{"k"})
	if err != nil || len(got) != 0 {
		t.Errorf("GetMulti = %v, %v; want no entries", got, err)
	}
}

// TestCloseAbortsInFlight checks that Close does not wait for, or leak, a
// connection in use: a Get stuck on a silent server returns as soon as
// Close closes its connection.
func TestCloseAbortsInFlight(t *testing.T) {
	t.Parallel()
	fs := startFakeServer(t, func(c net.Conn, r *bufio.Reader) { io.Copy(io.Discard, r) })
	tr, err := New([]string{fs.addr}, WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := tr.Get(context.Background(), "k")
		done <- err
	}()
	<-fs.accepted
	time.Sleep(10 * time.Millisecond) // let the Get write its request
	tr.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Get succeeded on a closed Tier")
		}
	case <-time.After(faultBound):
		t.Fatal("Get still blocked after Close")
	}
	if open := openConns(tr); open != 0 {
		t.Fatalf("%d connections open after Close", open)
	}
}

// TestPartialGetMulti checks that a GetMulti over two nodes, one of them
// down, returns what the live node has along with ErrUnavailable.
func TestPartialGetMulti(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	live := testenv.Memcached(t)
	dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	tr, err := New([]string{live.Addr, dead}, WithTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()

	// Sort keys by node: a Set succeeds only on the live one.
	var onLive, onDead []string
	for i := 0; len(onLive) < 5 || len(onDead) < 5; i++ {
		key := fmt.Sprintf("key-%d", i)
		if tr.Set(ctx, key, tier.Entry{Value: []byte(key)}) == nil {
			onLive = append(onLive, key)
		} else {
			onDead = append(onDead, key)
		}
	}
	got, err := tr.GetMulti(ctx, append(onDead[:5], onLive[:5]...))
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("GetMulti: %v, want ErrUnavailable", err)
	}
	if len(got) != 5 {
		t.Errorf("GetMulti returned %d entries, want the live node's 5", len(got))
	}
	for _, key := range onLive[:5] {
		if e, ok := got[key]; !ok || string(e.Value) != key {
			t.Errorf("GetMulti lost %q from the live node", key)
		}
	}
}
