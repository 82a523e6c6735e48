package memcached

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
)

// The tests of this file check the bounds the Tier keeps: connections per
// node, the size of each request, and what counts against a node's
// health. Their timeouts are generous where a loaded machine could make a
// healthy node look slow: they assert counts, never timings.

// generous is the timeout of the tests below that are not about timeouts.
const generous = 5 * time.Second

// connsOpened returns memcached's total_connections, less the one the query
// itself opened.
func connsOpened(t *testing.T, mc *testenv.MemcachedServer) int64 {
	t.Helper()
	n, err := strconv.ParseInt(mc.Stat("total_connections"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n - 1
}

// A thousand goroutines Getting one key share the node's few connections:
// memcached (with its default -c 1024) sees no more connections opened
// than the bound, and the node is never marked down.
func TestConcurrentGetsStayWithinTheBound(t *testing.T) {
	t.Parallel()
	mc := testenv.Memcached(t)
	before := connsOpened(t, mc)
	tr, err := New([]string{mc.Addr}, WithTimeout(generous))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	mustSet(t, tr, "k")
	var g errgroup.Group
	for range 1000 {
		g.Go(func() error {
			_, err := tr.Get(context.Background(), "k")
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if opened := connsOpened(t, mc) - before - 1; opened > DefaultServerConnections {
		t.Errorf("%d connections opened, want at most %d", opened, DefaultServerConnections)
	}
	if c := tr.Counters(); c["ejections"] != 0 || c["errors"] != 0 || c["hits"] != 1000 {
		t.Errorf("ejections %d, errors %d, hits %d; want 0, 0, 1000", c["ejections"], c["errors"], c["hits"])
	}
}

// A warm GetMulti of 100,000 keys is cut into bounded pieces, pipelined:
// every key is found, nothing fails, and the node sees one request per
// piece rather than one giant multi-get.
func TestGetMultiHundredThousand(t *testing.T) {
	t.Parallel()
	const keys = 100_000
	tr, _ := newTestTier(t, WithTimeout(generous))
	ctx := context.Background()
	all := make([]string, keys)
	items := make([]kv, keys)
	for i := range all {
		all[i] = fmt.Sprintf("warm:%06d", i)
		items[i] = kv{all[i], tier.Entry{Value: make([]byte, 100)}}
	}
	got := newOutcomes(t)
	if err := tr.AddBulk(ctx, seqOf(items), got.done); err != nil {
		t.Fatal(err)
	}
	if n := got.count(func(err error) bool { return err != nil }); n != 0 {
		t.Fatalf("%d adds failed", n)
	}
	requests := tr.NodeStats()[0].Counters["requests"]
	m, err := tr.GetMulti(ctx, all)
	if err != nil || len(m) != keys {
		t.Fatalf("GetMulti found %d of %d: %v", len(m), keys, err)
	}
	sent := tr.NodeStats()[0].Counters["requests"] - requests
	if want := int64((keys + getPieceKeys - 1) / getPieceKeys); sent != want {
		t.Errorf("GetMulti sent %d requests, want %d pieces of %d keys", sent, want, getPieceKeys)
	}
	if c := tr.Counters(); c["timeouts"] != 0 || c["errors"] != 0 {
		t.Errorf("timeouts %d, errors %d; want none", c["timeouts"], c["errors"])
	}
}

// memcached started with -I 1k, the Tier not told: 2 KB values are
// refused as too large (for the tiers below to keep), the node stays up,
// and no connection is opened beyond the bound: a refusal is an answer,
// not a broken connection.
func TestTooLargeLearnt(t *testing.T) {
	t.Parallel()
	mc := testenv.Memcached(t, testenv.WithItemSize(1024))
	before := connsOpened(t, mc)
	tr, err := New([]string{mc.Addr}, WithTimeout(generous))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx := context.Background()
	big := tier.Entry{Value: make([]byte, 2048)}
	var g errgroup.Group
	for i := range 200 {
		g.Go(func() error {
			key := "big-" + strconv.Itoa(i)
			if err := tr.Set(ctx, key, big); !errors.Is(err, tier.ErrTooLarge) {
				return fmt.Errorf("Set(%s): %v, want ErrTooLarge", key, err)
			}
			if err := tr.Add(ctx, key, big); !errors.Is(err, tier.ErrTooLarge) {
				return fmt.Errorf("Add(%s): %v, want ErrTooLarge", key, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	mustSet(t, tr, "small") // the node still serves what fits
	mustGet(t, tr, "small")
	if opened := connsOpened(t, mc) - before - 1; opened > DefaultServerConnections {
		t.Errorf("%d connections opened, want at most %d", opened, DefaultServerConnections)
	}
	ns := tr.NodeStats()[0]
	if ns.State != "up" || ns.Counters["ejections"] != 0 || ns.Counters["errors"] != 0 {
		t.Errorf("node %s, %v; want up, without errors", ns.State, ns.Counters)
	}
}

// A value the server refuses as too large, when the Tier could not ask
// the server's limit beforehand, teaches it the limit: the next one that
// large is refused without being sent, and the connection stays.
func TestTooLargeLearntFromRefusal(t *testing.T) {
	t.Parallel()
	mc := testenv.Memcached(t, testenv.WithItemSize(1024))
	tr, err := New([]string{mc.Addr}, WithTimeout(generous))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	n := tr.members.current.Load().nodes()[0]
	n.limitAsked.Store(true) // as for a proxy that does not answer stats
	ctx := context.Background()
	big := tier.Entry{Value: make([]byte, 2048)}
	if err := tr.Set(ctx, "a", big); !errors.Is(err, tier.ErrTooLarge) {
		t.Fatalf("first Set: %v, want ErrTooLarge", err)
	}
	requests := n.stats.requests.Load()
	if err := tr.Set(ctx, "b", big); !errors.Is(err, tier.ErrTooLarge) {
		t.Fatalf("second Set: %v, want ErrTooLarge", err)
	}
	// The second Set only deleted the key, so that no older value stays.
	if sent := n.stats.requests.Load() - requests; sent != 1 {
		t.Errorf("second Set sent %d requests, want 1 (the delete)", sent)
	}
	if dials := n.pool.Stats().Dials; dials != 1 {
		t.Errorf("%d connections dialed, want 1", dials)
	}
}

// slowServer answers every get with END after delay, one request at a
// time, as a busy but healthy memcached would.
func slowServer(t *testing.T, delay time.Duration) *fakeServer {
	return startFakeServer(t, func(c net.Conn, r *bufio.Reader) {
		readLines(r, func(line string) {
			if strings.HasPrefix(line, "get ") {
				time.Sleep(delay)
				c.Write([]byte("END\r\n"))
			}
		})
	})
}

// Callers who give up while their requests wait behind others on a slow
// but answering node do not count against it: the node stays up.
func TestWaitingIsNotANodeFailure(t *testing.T) {
	t.Parallel()
	fs := slowServer(t, 5*time.Millisecond)
	tr, err := New([]string{fs.addr}, WithServerConnections(1), WithFailureLimit(1), WithTimeout(generous))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		gaveUp   int
		unwanted []error
	)
	for range 200 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			_, err := tr.Get(ctx, "k")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				gaveUp++
			case !errors.Is(err, tier.ErrMiss):
				unwanted = append(unwanted, err)
			}
		})
	}
	wg.Wait()
	if len(unwanted) > 0 {
		t.Fatalf("%d callers failed otherwise than a miss or their deadline: %v (first: %v; node %v)",
			len(unwanted), unwanted[len(unwanted)-1], unwanted[0], tr.NodeStats()[0].Counters)
	}
	if gaveUp == 0 {
		t.Fatal("no caller gave up: the test did not queue")
	}
	ns := tr.NodeStats()[0]
	if ns.State != "up" || ns.Counters["ejections"] != 0 || ns.Counters["errors"] != 0 {
		t.Errorf("node %s, %v; want up, without errors", ns.State, ns.Counters)
	}
	if _, err := tr.Get(context.Background(), "k"); !errors.Is(err, tier.ErrMiss) {
		t.Errorf("Get after the crowd: %v, want a miss", err)
	}
}

// A hung node's own failures do mark it down, but only the requests that
// were waiting for its reply at the head of a connection count as its
// timeouts, not every caller queued behind them.
func TestHungNodeFailuresCountOnce(t *testing.T) {
	t.Parallel()
	tr, addr := hungTier(t)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if _, err := tr.Get(context.Background(), "k"); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Get on a hung node: %v, want ErrUnavailable", err)
			}
		})
	}
	wg.Wait()
	ns := nodeStats(t, tr, addr)
	if ns.Counters["ejections"] != 1 {
		t.Errorf("ejections = %d, want 1", ns.Counters["ejections"])
	}
	// Every request on a connection that timed out fails with it, counted
	// once; a request that raced the node going down may dial one more.
	if n := ns.Counters["timeouts"]; n < 1 || n > ns.Counters["dials"] {
		t.Errorf("timeouts = %d, want 1 to one per connection (%d dialed)", n, ns.Counters["dials"])
	}
}

// A node that answers again is back in service long before the retry
// timeout: it is probed every second while it is down.
func TestNodeProbedBackFast(t *testing.T) {
	t.Parallel()
	tr, mc := newTestTier(t, WithTimeout(500*time.Millisecond), WithRetryTimeout(time.Hour))
	mustSet(t, tr, "k")
	mc.Stop()
	for nodeStats(t, tr, mc.Addr).State == "up" {
		tr.Get(context.Background(), "k")
	}
	mc.Cont()
	waitState(t, tr, mc.Addr, "up") // waitFor gives up long before an hour
	mustGet(t, tr, "k")
}

// A Delete that failed on a node is queued for replay on it; a later
// invalidation of the key that lands (here a lease marker) makes the
// replay moot, and the replay, when the node comes back from being down,
// must not delete the newer marker.
func TestReplayDroppedByNewerInvalidation(t *testing.T) {
	t.Parallel()
	tr, mc := newTestTier(t, WithTimeout(200*time.Millisecond), WithFailureLimit(2))
	ctx := context.Background()
	mustSet(t, tr, "k")
	n := tr.members.current.Load().nodes()[0]

	mc.Stop()
	if err := tr.Delete(ctx, "k"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Delete on a stopped node: %v, want ErrUnavailable", err)
	}
	mc.Cont()
	if n.pendingCount() != 1 || !n.isUp() {
		t.Fatalf("after one failed Delete: %d pending, state %s; want 1 pending and up", n.pendingCount(), n.currentState())
	}
	at := time.Now()
	if err := tr.Invalidate(ctx, "k", tier.LeaseWrite{Marker: tier.Marker{At: at, Until: at.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}

	// Down and back: the probe replays what is still pending.
	mc.Stop()
	for n.isUp() {
		tr.Get(ctx, "k")
	}
	mc.Cont()
	waitState(t, tr, mc.Addr, "up")
	if got := metaTTL(t, mc.Addr, "k"); got == "EN" {
		t.Fatal("the marker written after the failed Delete was deleted by its replay")
	}
	if l := leaseOne(t, tr, "k", tier.LeaseRequest{}); !l.Marker.At.Equal(at.Truncate(time.Microsecond)) {
		t.Errorf("lease after the replay carries marker %v, want %v", l.Marker.At, at)
	}
}

// FillMulti fills the leases of many keys, pipelined per node, and tells
// each fill's outcome: landed, or lost to an invalidation.
func TestFillMulti(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	forSetups(t, allSetups, func(t *testing.T, s leaseSetup) {
		tg := s.start(t)
		tr := s.client(t, tg.addr)
		keys := make([]string, 300)
		for i := range keys {
			keys[i] = fmt.Sprintf("fill-%03d", i)
		}
		keys[7] = strings.Repeat("long key ", 40) // hashed
		ls, err := tr.Lease(ctx, keys, tier.LeaseRequest{TTL: 10 * time.Second, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		if err := tr.Invalidate(ctx, keys[3], tier.LeaseWrite{Marker: tier.Marker{At: at}}); err != nil {
			t.Fatal(err)
		}
		fills := make([]tier.LeaseFill, len(keys))
		for i, k := range keys {
			if ls[k].State != tier.LeaseWon {
				t.Fatalf("lease of %s: %+v, want won", k, ls[k])
			}
			fills[i] = tier.LeaseFill{Key: k, Lease: ls[k], Write: entryWrite("v"+strconv.Itoa(i), time.Minute, tier.Marker{})}
		}
		errs := tr.FillMulti(ctx, fills)
		for i, err := range errs {
			switch {
			case i == 3 && !errors.Is(err, tier.ErrLeaseLost):
				t.Errorf("fill of the invalidated key: %v, want ErrLeaseLost", err)
			case i != 3 && err != nil:
				t.Errorf("fill of %s: %v", keys[i], err)
			}
		}
		m, err := tr.GetMulti(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range keys {
			e, ok := m[k]
			switch {
			case i == 3 && ok:
				t.Errorf("the invalidated key holds %q", e.Value)
			case i != 3 && (!ok || string(e.Value) != "v"+strconv.Itoa(i)):
				t.Errorf("%s holds %q (found %v), want v%d", k, e.Value, ok, i)
			}
		}
	})
}

// After memcached restarts on the same port, the pooled connections the
// old process closed are tried again on fresh ones rather than reported:
// Gets miss and Adds succeed, without an error.
func TestRetryAfterRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr, mc := newTestTier(t, WithTimeout(generous))
	e := tier.Entry{Value: []byte("v")}
	var sets errgroup.Group
	for i := range 64 {
		sets.Go(func() error { return tr.Set(ctx, "set-"+strconv.Itoa(i), e) })
	}
	if err := sets.Wait(); err != nil {
		t.Fatal(err)
	}
	if open := openConns(tr); open != DefaultServerConnections {
		t.Fatalf("%d connections open, want %d", open, DefaultServerConnections)
	}
	mc.Restart()
	if _, err := tr.Get(ctx, "set-0"); !errors.Is(err, tier.ErrMiss) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get after restart: %v, want ErrMiss", err)
	}
	var adds errgroup.Group
	for i := range 64 {
		adds.Go(func() error { return tr.Add(ctx, "add-"+strconv.Itoa(i), e) })
	}
	if err := adds.Wait(); err != nil {
		t.Fatalf("concurrent Adds after restart: %v", err)
	}
	c := tr.Counters()
	if c["retries"] == 0 || c["errors"] != 0 || c["ejections"] != 0 {
		t.Fatalf("retries = %d, errors = %d, ejections = %d; want some retries and no errors", c["retries"], c["errors"], c["ejections"])
	}
}
