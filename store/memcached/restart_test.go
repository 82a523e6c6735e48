package memcached

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
)

const testDetect = 20 * time.Millisecond

// nextRestart waits for the next report on tr's Restarts.
func nextRestart(t *testing.T, tr *Tier) tier.Restart {
	t.Helper()
	select {
	case r, ok := <-tr.Restarts():
		if !ok {
			t.Fatal("Restarts closed")
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("no restart reported within 10s; counters %v", tr.Counters())
		return tier.Restart{}
	}
}

// noRestart checks that nothing was reported over a few checks.
func noRestart(t *testing.T, tr *Tier) {
	t.Helper()
	start := tr.Counters()["restart_checks"]
	waitFor(t, "three more checks", func() bool { return tr.Counters()["restart_checks"] >= start+3 })
	select {
	case r := <-tr.Restarts():
		t.Fatalf("unexpected report %+v", r)
	default:
	}
}

func waitBaseline(t *testing.T, tr *Tier) {
	t.Helper()
	waitFor(t, "a first successful check", func() bool {
		c := tr.Counters()
		return c["restart_checks"] > c["restart_check_errors"]
	})
}

func TestRestartDetected(t *testing.T) {
	t.Parallel()
	tr, mc := newTestTier(t, WithRestartDetection(testDetect))
	waitBaseline(t, tr)
	noRestart(t, tr)

	mc.Restart()
	r := nextRestart(t, tr)
	if r.Node != mc.Addr || r.Reason != "restarted" || r.Owns != nil {
		t.Errorf("restart = %+v, want %s restarted, every key (one node)", r, mc.Addr)
	}
	noRestart(t, tr)

	// flush_all empties the same process: the sentinel is gone.
	c := testenv.RawClient(mc.Addr)
	if err := c.FlushAll(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if r := nextRestart(t, tr); r.Reason != "flushed" {
		t.Errorf("after flush_all: %+v", r)
	}
	noRestart(t, tr)
	cs := tr.Counters()
	if cs["restarts_detected"] != 1 || cs["flushes_detected"] != 1 || cs["restarts_dropped"] != 0 {
		t.Errorf("counters %v", cs)
	}
}

// A delayed flush_all voids, once it takes effect, everything stored up to
// that second, the sentinel put back included: it is reported once, after
// it took effect, and what is stored once it is reported stays.
func TestDelayedFlushReportedOnceAfterItTakesEffect(t *testing.T) {
	t.Parallel()
	tr, mc := newTestTier(t, WithRestartDetection(testDetect))
	waitBaseline(t, tr)
	conn, err := net.Dial("tcp", mc.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprint(conn, "flush_all 2\r\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "OK\r\n" {
		t.Fatalf("flush_all 2: %q, %v", line, err)
	}
	if r := nextRestart(t, tr); r.Reason != "flushed" {
		t.Fatalf("after flush_all 2: %+v", r)
	}
	c := testenv.RawClient(mc.Addr)
	defer c.Close()
	if err := c.Set(&memcache.Item{Key: "after", Value: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	noRestart(t, tr)
	if _, err := c.Get("after"); err != nil {
		t.Errorf("an item stored once the flush was reported: %v", err)
	}
	if n := tr.Counters()["flushes_detected"]; n != 1 {
		t.Errorf("flushes_detected = %d, want 1", n)
	}
}

// A node that live traffic found dead is marked down; its restart is
// reported once it is back in service, which detection hastens instead
// of waiting out the retry timeout.
func TestRestartOfNodeMarkedDown(t *testing.T) {
	t.Parallel()
	tr, mc := newTestTier(t, WithRestartDetection(testDetect), WithRetryTimeout(time.Hour), WithFailureLimit(1))
	waitBaseline(t, tr)
	mc.Kill()
	if _, err := tr.Get(context.Background(), "k"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get on a dead node: %v", err)
	}
	waitState(t, tr, mc.Addr, "down")
	mc.Restart()
	r := nextRestart(t, tr)
	if r.Reason != "restarted" {
		t.Errorf("restart = %+v", r)
	}
	if st := nodeStats(t, tr, mc.Addr).State; st != "up" {
		t.Errorf("node %s when its restart was reported, want up", st)
	}
}

// With several nodes, Owns selects exactly the keys placed on the node
// that restarted.
func TestRestartOwnsTheNodesKeys(t *testing.T) {
	t.Parallel()
	a, b := testenv.Memcached(t), testenv.Memcached(t)
	tr, err := New([]string{a.Addr, b.Addr}, patient(WithRestartDetection(testDetect))...)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	waitFor(t, "both nodes checked", func() bool { return tr.Counters()["restart_checks"] >= 4 })
	b.Restart()
	r := nextRestart(t, tr)
	if r.Node != b.Addr || r.Owns == nil {
		t.Fatalf("restart = %+v, want %s with an Owns", r, b.Addr)
	}
	ctx := context.Background()
	raw := testenv.RawClient(b.Addr)
	defer raw.Close()
	owned := 0
	for i := range 200 {
		key := fmt.Sprint("key-", i)
		if err := tr.Set(ctx, key, tier.Entry{Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		_, err := raw.Get(key)
		onB := err == nil
		if r.Owns(key) != onB {
			t.Errorf("Owns(%q) = %v, but the key is on b: %v", key, r.Owns(key), onB)
		}
		if onB {
			owned++
		}
	}
	if owned == 0 || owned == 200 {
		t.Errorf("%d of 200 keys on b: the test needs both nodes used", owned)
	}
}

// Close stops detection and closes Restarts; the leak check in TestMain
// proves the goroutine gone.
func TestRestartDetectionStopsOnClose(t *testing.T) {
	t.Parallel()
	tr, _ := newTestTier(t, WithRestartDetection(testDetect))
	waitBaseline(t, tr)
	tr.Close()
	select {
	case _, ok := <-tr.Restarts():
		if ok {
			t.Error("a report after Close")
		}
	case <-time.After(5 * time.Second):
		t.Error("Restarts not closed by Close")
	}
}

func TestRestartDetectionOff(t *testing.T) {
	t.Parallel()
	tr, _ := newTestTier(t)
	if tr.Restarts() != nil {
		t.Error("Restarts is not nil without WithRestartDetection")
	}
	if _, err := New([]string{"127.0.0.1:11211"}, WithRestartDetection(0)); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("WithRestartDetection(0): %v", err)
	}
}

// A node that answers garbage to the checks is counted, not reported.
func TestRestartCheckGarbage(t *testing.T) {
	t.Parallel()
	fs := startFakeServer(t, func(c net.Conn, r *bufio.Reader) {
		readLines(r, func(line string) {
			if line == "stats" {
				c.Write([]byte("STAT pid twelve\r\nEND\r\n"))
			}
		})
	})
	tr, err := New([]string{fs.addr}, WithRestartDetection(testDetect))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	waitFor(t, "failed checks", func() bool { return tr.Counters()["restart_check_errors"] >= 3 })
	select {
	case r := <-tr.Restarts():
		t.Errorf("garbage reported as %+v", r)
	default:
	}
}
