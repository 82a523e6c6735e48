package memcached

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/tier"
)

// These tests run the whole chain: three real memcached nodes on top, a
// bbolt file below, and a loader as the source of truth. A node dies or
// hangs under the callers' feet; they must not notice.

// chain is a cache whose memcached tier spreads over three nodes.
type chain struct {
	cache *tier.Cache
	mc    *Tier
	nodes []*testenv.MemcachedServer
	keys  []string
}

func newChain(t *testing.T, keys int, opts ...Option) *chain {
	t.Helper()
	ch := &chain{nodes: []*testenv.MemcachedServer{testenv.Memcached(t), testenv.Memcached(t), testenv.Memcached(t)}}
	addrs := make([]string, len(ch.nodes))
	for i, n := range ch.nodes {
		addrs[i] = n.Addr
	}
	// A second is short enough for the hung-node tests and long enough
	// that a healthy node on a loaded machine does not time out.
	opts = append([]Option{WithTimeout(time.Second), WithRetryTimeout(testRetry)}, opts...)
	mc, err := New(addrs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	disk, err := boltdb.Open(t.TempDir()+"/c.db", boltdb.WithNoSync(true))
	if err != nil {
		mc.Close()
		t.Fatal(err)
	}
	src := tier.LoaderFunc(func(_ context.Context, keys []string) (map[string][]byte, error) {
		out := make(map[string][]byte, len(keys))
		for _, k := range keys {
			out[k] = []byte("v-" + k)
		}
		return out, nil
	})
	ch.cache, err = tier.New(src, tier.WithTier(mc, time.Hour), tier.WithTier(disk, 24*time.Hour))
	if err != nil {
		mc.Close()
		disk.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.cache.Close() })
	ch.mc = mc
	for i := range keys {
		ch.keys = append(ch.keys, "item:"+strconv.Itoa(i))
	}
	// Every key now lives in memcached and in bbolt, once the fills that
	// follow the answers are done and bbolt has written them.
	ch.pass(t)
	waitFor(t, "the fills", func() bool { return ch.cache.Stats().Fills.Pending == 0 })
	if err := disk.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ch
}

// pass reads every key once, in order, and fails the test on a wrong
// answer.
func (ch *chain) pass(t *testing.T) {
	t.Helper()
	for _, k := range ch.keys {
		if err := ch.get(k); err != nil {
			t.Fatal(err)
		}
	}
}

func (ch *chain) get(key string) error {
	v, err := ch.cache.Get(context.Background(), key)
	if err != nil {
		return fmt.Errorf("Get %s: %w", key, err)
	}
	if string(v) != "v-"+key {
		return fmt.Errorf("Get %s = %q", key, v)
	}
	return nil
}

// load runs workers goroutines reading keys round and round until stop is
// called, which returns how many Gets ran and the first error seen.
func (ch *chain) load(workers int) (gets *atomic.Int64, stop func() error) {
	gets = new(atomic.Int64)
	var (
		wg       sync.WaitGroup
		quit     = make(chan struct{})
		mu       sync.Mutex
		firstErr error
	)
	for w := range workers {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-quit:
					return
				default:
				}
				if err := ch.get(ch.keys[i%len(ch.keys)]); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
				gets.Add(1)
			}
		})
	}
	return gets, func() error {
		close(quit)
		wg.Wait()
		return firstErr
	}
}

// waitGets waits until n more Gets have run.
func waitGets(t *testing.T, gets *atomic.Int64, n int64) {
	t.Helper()
	start := gets.Load()
	waitFor(t, fmt.Sprintf("%d more Gets", n), func() bool { return gets.Load() >= start+n })
}

func (ch *chain) loads() int64 { return ch.cache.Stats().Loader.Statements }

// TestChainNodeKilledUnderLoad kills one node of three while eight
// callers read: no caller sees an error, the node's keys come from bbolt
// (never the source), no request reaches the node while it is down, and
// once it is back its keys are hits again after one backfill.
func TestChainNodeKilledUnderLoad(t *testing.T) {
	t.Parallel()
	// A killed node refuses at once: a generous timeout keeps the live
	// nodes from timing out on a loaded machine.
	ch := newChain(t, 300, WithTimeout(testenv.Timeout))
	dead := ch.nodes[1]
	loadsBefore := ch.loads()

	gets, stop := ch.load(8)
	waitGets(t, gets, 500)
	dead.Kill()
	waitState(t, ch.mc, dead.Addr, "down")
	waitGets(t, gets, 1000)
	requests := nodeStats(t, ch.mc, dead.Addr).Counters["requests"]
	waitGets(t, gets, 2000)
	ns := nodeStats(t, ch.mc, dead.Addr)
	if err := stop(); err != nil {
		t.Fatalf("a caller saw an error: %v", err)
	}
	if ns.Counters["requests"] != requests {
		t.Errorf("requests to the down node went from %d to %d", requests, ns.Counters["requests"])
	}
	if ns.Counters["ejections"] != 1 || ns.Counters["skipped"] == 0 {
		t.Errorf("dead node counters %v, want one ejection and skipped requests", ns.Counters)
	}
	if n := ch.loads(); n != loadsBefore {
		t.Errorf("the source was asked %d times; bbolt should have answered", n-loadsBefore)
	}

	dead.Restart()
	waitState(t, ch.mc, dead.Addr, "up")
	ch.pass(t) // the dead node's keys miss, are found in bbolt and backfilled
	before := nodeStats(t, ch.mc, dead.Addr).Counters
	ch.pass(t)
	after := nodeStats(t, ch.mc, dead.Addr).Counters
	if after["misses"] != before["misses"] || after["hits"] == before["hits"] {
		t.Errorf("after backfill: hits %d -> %d, misses %d -> %d; want only hits",
			before["hits"], after["hits"], before["misses"], after["misses"])
	}
	if n := ch.loads(); n != loadsBefore {
		t.Errorf("the source was asked %d times", n-loadsBefore)
	}
}

// TestChainNodeHung freezes one node of three while a caller reads every
// key: failure-limit operations (and a fill beside them) wait out the
// timeout on it, every later one is answered without touching it, and no caller sees an error.
// Resumed, the node is probed and serves its keys again.
func TestChainNodeHung(t *testing.T) {
	t.Parallel()
	ch := newChain(t, 300)
	hung := ch.nodes[2]
	hung.Stop()
	defer hung.Cont()

	ch.pass(t)
	ns := nodeStats(t, ch.mc, hung.Addr)
	// The chain fills memcached after answering, so fills may be on the
	// wire to the hung node beside the caller's gets; each connection
	// times out once, taking what it carried with it.
	if n := ns.Counters["timeouts"]; n < DefaultFailureLimit || n > ns.Counters["dials"] {
		t.Fatalf("timeouts on the hung node = %d, want %d to one per connection (%d)", n, DefaultFailureLimit, ns.Counters["dials"])
	}
	ch.pass(t)
	again := nodeStats(t, ch.mc, hung.Addr)
	if again.Counters["requests"] != ns.Counters["requests"] || again.Counters["timeouts"] != ns.Counters["timeouts"] {
		t.Fatalf("hung node counters went from %v to %v; want no more requests", ns.Counters, again.Counters)
	}

	hung.Cont()
	waitState(t, ch.mc, hung.Addr, "up")
	ch.pass(t)
	back := nodeStats(t, ch.mc, hung.Addr)
	if back.Counters["hits"] == again.Counters["hits"] || back.Counters["misses"] != again.Counters["misses"] {
		t.Fatalf("resumed node: hits %d -> %d, misses %d -> %d; want its keys to hit",
			again.Counters["hits"], back.Counters["hits"], again.Counters["misses"], back.Counters["misses"])
	}
}

// TestChainNodeHungUnderLoad freezes a node while eight callers read.
// Operations in flight when it froze wait out the timeout, so more than
// failure-limit of them can time out, but never more than one per
// connection; after that the node costs nothing.
func TestChainNodeHungUnderLoad(t *testing.T) {
	t.Parallel()
	const workers = 8
	ch := newChain(t, 300)
	hung := ch.nodes[0]

	gets, stop := ch.load(workers)
	waitGets(t, gets, 500)
	hung.Stop()
	defer hung.Cont()
	waitState(t, ch.mc, hung.Addr, "down")
	waitGets(t, gets, 2000)
	ns := nodeStats(t, ch.mc, hung.Addr)
	if err := stop(); err != nil {
		t.Fatalf("a caller saw an error: %v", err)
	}
	if n := ns.Counters["timeouts"]; n < DefaultFailureLimit || n > ns.Counters["dials"] {
		t.Fatalf("timeouts on the hung node = %d, want %d to one per connection (%d)", n, DefaultFailureLimit, ns.Counters["dials"])
	}
	if ns.Counters["ejections"] != 1 {
		t.Fatalf("ejections = %d, want 1", ns.Counters["ejections"])
	}
}

// TestChainAutoEject kills a node with auto-eject on: its keys move to the
// other two, where the backfilled copies carry the capped TTL.
func TestChainAutoEject(t *testing.T) {
	t.Parallel()
	// The dead node is killed, so its failures are refused connections,
	// not timeouts: a generous timeout keeps the substitute's fills from
	// timing out on a loaded machine, and a cap far below the chain's
	// hour still shows the cap while outlasting any pause of the test.
	const ttlCap = 30 * time.Second
	ch := newChain(t, 300, WithAutoEject(true), WithEjectedTTLCap(ttlCap), WithTimeout(testenv.Timeout))
	dead := ch.nodes[1]
	onDead := keysOn(t, ch.mc, dead.Addr, 20)
	dead.Kill()
	for _, k := range onDead[:DefaultFailureLimit] {
		if err := ch.get(k); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the placement without "+dead.Addr, func() bool {
		r, err := ch.mc.route(onDead[0])
		return err == nil && r.substitute()
	})
	// The Gets above answered before their fills of the dead node failed;
	// until those fills end, a Get of the same key joins them instead of
	// reading the substitute.
	waitFor(t, "the fills of the dead node", func() bool { return ch.cache.Stats().Fills.Pending == 0 })
	for _, k := range onDead {
		if err := ch.get(k); err != nil { // a miss on the substitute, backfilled from bbolt
			t.Fatal(err)
		}
		// The chain fills memcached after answering.
		waitFor(t, "the fills", func() bool { return ch.cache.Stats().Fills.Pending == 0 })
		r, _ := ch.mc.route(k)
		reply := metaTTL(t, r.owner.key, k)
		secs, err := strconv.Atoi(strings.TrimPrefix(reply, "HD t"))
		if err != nil || secs < 1 || secs > int(ttlCap/time.Second)+1 { // and memcached's second
			t.Fatalf("%s on substitute %s: %q, want a TTL of at most %v and a second", k, r.owner.key, reply, ttlCap)
		}
	}
	if n := ch.mc.Counters()["ttl_capped"]; n < int64(len(onDead)) {
		t.Fatalf("ttl_capped = %d, want at least %d", n, len(onDead))
	}
}
