package memcached

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/tier"
)

// testRetry is the retry timeout of the Tiers in these tests: short, so
// that a node comes back quickly, but long against a loopback round trip.
const testRetry = 200 * time.Millisecond

// nodeStats returns the stats of the node at addr.
func nodeStats(t *testing.T, tr *Tier, addr string) tier.NodeStats {
	t.Helper()
	for _, ns := range tr.NodeStats() {
		if ns.Addr == addr {
			return ns
		}
	}
	t.Fatalf("no node %s in %v", addr, tr.NodeStats())
	return tier.NodeStats{}
}

func waitState(t *testing.T, tr *Tier, addr, state string) {
	t.Helper()
	waitFor(t, addr+" "+state, func() bool { return nodeStats(t, tr, addr).State == state })
}

// keysOn returns n keys that the Tier places on addr.
func keysOn(t *testing.T, tr *Tier, addr string, n int) []string {
	t.Helper()
	var keys []string
	for i := 0; len(keys) < n; i++ {
		if i > 100*n+1000 {
			t.Fatalf("found only %d keys on %s", len(keys), addr)
		}
		key := "key-" + strconv.Itoa(i)
		r, err := tr.route(key)
		if err != nil {
			t.Fatal(err)
		}
		if r.owner.key == addr {
			keys = append(keys, key)
		}
	}
	return keys
}

func TestHealthOptions(t *testing.T) {
	t.Parallel()
	srv := []string{"127.0.0.1:11211"}
	tests := []struct {
		name string
		opts []Option
		want error
	}{
		{"defaults", nil, nil},
		{"failure limit 1", []Option{WithFailureLimit(1)}, nil},
		{"failure limit 0", []Option{WithFailureLimit(0)}, ErrInvalidOption},
		{"retry timeout 0", []Option{WithRetryTimeout(0)}, ErrInvalidOption},
		{"negative retry timeout", []Option{WithRetryTimeout(-time.Second)}, ErrInvalidOption},
		{"TTL cap under a second", []Option{WithEjectedTTLCap(time.Millisecond)}, ErrInvalidOption},
		{"auto eject", []Option{WithAutoEject(true), WithEjectedTTLCap(5 * time.Second)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr, err := New(srv, tt.opts...)
			if !errors.Is(err, tt.want) || (err != nil) != (tt.want != nil) {
				t.Fatalf("New: %v, want %v", err, tt.want)
			}
			if tr != nil {
				tr.Close()
			}
		})
	}
}

// TestNodeDownAndBack kills one node of two: after the failure limit its
// keys are answered with ErrNodeDown without a request reaching the
// network, the other node is untouched, and once the node is back the
// probe returns it to service.
func TestNodeDownAndBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := testenv.Memcached(t), testenv.Memcached(t)
	tr, err := New([]string{a.Addr, b.Addr}, WithTimeout(testenv.Timeout), WithRetryTimeout(testRetry))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	onA, onB := keysOn(t, tr, a.Addr, 10), keysOn(t, tr, b.Addr, 10)
	for _, k := range append(onA, onB...) {
		mustSet(t, tr, k)
	}

	a.Kill()
	for i, k := range onA {
		_, err := tr.Get(ctx, k)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get %s on a killed node: %v, want ErrUnavailable", k, err)
		}
		if down := errors.Is(err, ErrNodeDown); down != (i >= DefaultFailureLimit) {
			t.Fatalf("Get #%d: %v; want ErrNodeDown from call %d on", i, err, DefaultFailureLimit+1)
		}
	}
	ns := nodeStats(t, tr, a.Addr)
	want := map[string]int64{
		"requests":  int64(len(onA) + DefaultFailureLimit), // the Sets, then the failed Gets
		"errors":    DefaultFailureLimit,
		"skipped":   int64(len(onA) - DefaultFailureLimit),
		"ejections": 1,
	}
	for name, n := range want {
		if ns.Counters[name] != n {
			t.Errorf("%s: %s = %d, want %d", a.Addr, name, ns.Counters[name], n)
		}
	}
	if ns.State != "down" && ns.State != "probing" {
		t.Errorf("state %q, want down", ns.State)
	}
	for _, k := range onB {
		mustGet(t, tr, k)
	}
	if ns := nodeStats(t, tr, b.Addr); ns.State != "up" || ns.Counters["errors"] != 0 {
		t.Errorf("%s: %+v, want up without errors", b.Addr, ns)
	}

	// While a is down, probes fail and nothing else touches it.
	waitFor(t, "a failed probe", func() bool { return nodeStats(t, tr, a.Addr).Counters["probe_failures"] > 0 })
	before := nodeStats(t, tr, a.Addr).Counters["requests"]
	for _, k := range onA {
		if _, err := tr.Get(ctx, k); !errors.Is(err, ErrNodeDown) {
			t.Fatalf("Get %s: %v, want ErrNodeDown", k, err)
		}
	}
	if after := nodeStats(t, tr, a.Addr).Counters["requests"]; after != before {
		t.Errorf("requests to the down node went from %d to %d", before, after)
	}

	a.Restart()
	waitState(t, tr, a.Addr, "up")
	for _, k := range onA {
		if _, err := tr.Get(ctx, k); !errors.Is(err, tier.ErrMiss) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get %s on the restarted node: %v, want a plain miss", k, err)
		}
	}
	mustSet(t, tr, onA[0])
	mustGet(t, tr, onA[0])
}

// TestHungNode freezes a node: the first failure-limit calls each wait out
// the timeout, and every later one is answered without waiting. Once the
// node resumes, the probe returns it to service with its data.
func TestHungNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr, mc := newTestTier(t, WithTimeout(100*time.Millisecond), WithRetryTimeout(testRetry))
	mustSet(t, tr, "k")
	mc.Stop()
	defer mc.Cont()

	const calls = 20
	for range calls {
		if _, err := tr.Get(ctx, "k"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get on a hung node: %v, want ErrUnavailable", err)
		}
	}
	ns := nodeStats(t, tr, mc.Addr)
	if ns.Counters["timeouts"] != DefaultFailureLimit || ns.Counters["skipped"] != calls-DefaultFailureLimit {
		t.Fatalf("timeouts = %d, skipped = %d; want %d and %d",
			ns.Counters["timeouts"], ns.Counters["skipped"], DefaultFailureLimit, calls-DefaultFailureLimit)
	}

	// The probes of a hung node time out in the background.
	waitFor(t, "a failed probe", func() bool { return nodeStats(t, tr, mc.Addr).Counters["probe_failures"] > 0 })
	if n := nodeStats(t, tr, mc.Addr).Counters["timeouts"]; n != DefaultFailureLimit {
		t.Fatalf("timeouts = %d after probes; probes must not count as requests", n)
	}

	mc.Cont()
	waitState(t, tr, mc.Addr, "up")
	if e := mustGet(t, tr, "k"); string(e.Value) != "v" {
		t.Fatalf("Get after resume = %q", e.Value)
	}
}

// TestMissedInvalidationsReplayed checks that a node that was hung while
// a key was deleted and another rewritten does not serve their old values
// when it resumes: the probe deletes them before the node takes traffic.
func TestMissedInvalidationsReplayed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr, mc := newTestTier(t, WithTimeout(100*time.Millisecond), WithRetryTimeout(testRetry))
	for _, k := range []string{"deleted", "rewritten", "kept"} {
		mustSet(t, tr, k)
	}
	mc.Stop()
	defer mc.Cont()
	for _, k := range []string{"deleted", "deleted", "deleted"} {
		if err := tr.Delete(ctx, k); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Delete on a hung node: %v", err)
		}
	}
	if err := tr.Set(ctx, "rewritten", tier.Entry{Value: []byte("new")}); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("Set on a down node: %v, want ErrNodeDown", err)
	}
	if n := nodeStats(t, tr, mc.Addr).Counters["pending_invalidations"]; n != 2 {
		t.Fatalf("pending_invalidations = %d, want 2", n)
	}

	mc.Cont()
	waitState(t, tr, mc.Addr, "up")
	for _, k := range []string{"deleted", "rewritten"} {
		if _, err := tr.Get(ctx, k); !errors.Is(err, tier.ErrMiss) {
			t.Errorf("Get %s after resume: %v, want a miss", k, err)
		}
	}
	mustGet(t, tr, "kept")
	ns := nodeStats(t, tr, mc.Addr)
	if ns.Counters["replayed_invalidations"] != 2 || ns.Counters["pending_invalidations"] != 0 {
		t.Errorf("replayed = %d, pending = %d; want 2, 0",
			ns.Counters["replayed_invalidations"], ns.Counters["pending_invalidations"])
	}
}

// TestAutoEject kills one node of three with auto-eject on: its keys move
// to the others, where they are stored with the capped TTL, and come home
// once the node is back.
func TestAutoEject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nodes := []*testenv.MemcachedServer{testenv.Memcached(t), testenv.Memcached(t), testenv.Memcached(t)}
	addrs := []string{nodes[0].Addr, nodes[1].Addr, nodes[2].Addr}
	const ttlCap = 5 * time.Second
	tr, err := New(addrs, WithTimeout(testenv.Timeout), WithRetryTimeout(testRetry),
		WithAutoEject(true), WithEjectedTTLCap(ttlCap))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	dead := nodes[1]
	keys := keysOn(t, tr, dead.Addr, 20)

	dead.Kill()
	for range DefaultFailureLimit {
		tr.Get(ctx, keys[0])
	}
	waitFor(t, "the placement without "+dead.Addr, func() bool {
		r, err := tr.route(keys[0])
		return err == nil && r.substitute()
	})
	expires := time.Now().Add(time.Hour)
	for _, k := range keys {
		if err := tr.Set(ctx, k, tier.Entry{Value: []byte(k), Expires: expires}); err != nil {
			t.Fatalf("Set %s with its node ejected: %v", k, err)
		}
		if e := mustGet(t, tr, k); string(e.Value) != k || e.Expires.After(time.Now().Add(ttlCap)) {
			t.Fatalf("Get %s = %q expiring %v, want it capped to %v", k, e.Value, e.Expires, ttlCap)
		}
		r, _ := tr.route(k)
		ttl := metaTTL(t, r.owner.key, k)
		secs, err := strconv.Atoi(ttl[len("HD t"):])
		// The cap, plus the second every expiration gets for memcached's
		// coarse clock; the envelope's expiry is capped exactly (above).
		if err != nil || secs < 1 || secs > int(ttlCap/time.Second)+1 {
			t.Fatalf("TTL of %s on substitute %s: %q, want at most %v and a second", k, r.owner.key, ttl, ttlCap)
		}
	}
	if c := tr.Counters(); c["ttl_capped"] != int64(len(keys)) || c["node_down"] != 0 {
		t.Errorf("ttl_capped = %d, node_down = %d; want %d, 0", c["ttl_capped"], c["node_down"], len(keys))
	}

	dead.Restart()
	waitState(t, tr, dead.Addr, "up")
	waitFor(t, "the placement with "+dead.Addr, func() bool {
		r, err := tr.route(keys[0])
		return err == nil && !r.substitute()
	})
	for _, k := range keys {
		if _, err := tr.Get(ctx, k); !errors.Is(err, tier.ErrMiss) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get %s on the returned node: %v, want a plain miss", k, err)
		}
	}
}

// TestGetMultiSkipsDownNode checks that a multi-get asks only the nodes
// that are up, and returns what they hold with ErrNodeDown.
func TestGetMultiSkipsDownNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := testenv.Memcached(t), testenv.Memcached(t)
	tr, err := New([]string{a.Addr, b.Addr}, WithTimeout(testenv.Timeout), WithRetryTimeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	onA, onB := keysOn(t, tr, a.Addr, 5), keysOn(t, tr, b.Addr, 5)
	for _, k := range append(onA, onB...) {
		mustSet(t, tr, k)
	}
	a.Kill()
	for range DefaultFailureLimit {
		tr.Get(ctx, onA[0])
	}
	waitState(t, tr, a.Addr, "down")
	before := nodeStats(t, tr, a.Addr).Counters["requests"]
	got, err := tr.GetMulti(ctx, append(onA, onB...))
	if !errors.Is(err, ErrNodeDown) {
		t.Errorf("GetMulti: %v, want ErrNodeDown", err)
	}
	if len(got) != len(onB) {
		t.Errorf("GetMulti found %d keys, want %d", len(got), len(onB))
	}
	for _, k := range onB {
		if _, ok := got[k]; !ok {
			t.Errorf("GetMulti lost %s from the live node", k)
		}
	}
	if after := nodeStats(t, tr, a.Addr).Counters["requests"]; after != before {
		t.Errorf("GetMulti sent %d requests to the down node", after-before)
	}
}

func TestNodeStatsConnections(t *testing.T) {
	t.Parallel()
	tr, mc := newTestTier(t)
	mustSet(t, tr, "k")
	mustGet(t, tr, "k")
	ns := nodeStats(t, tr, mc.Addr)
	want := map[string]int64{"requests": 2, "hits": 1, "misses": 0, "errors": 0, "connections": 1}
	for name, n := range want {
		if ns.Counters[name] != n {
			t.Errorf("%s = %d, want %d", name, ns.Counters[name], n)
		}
	}
	if ns.Name != mc.Addr || ns.State != "up" {
		t.Errorf("NodeStats = %+v", ns)
	}
	tr.Close()
	if n := nodeStats(t, tr, mc.Addr).Counters["connections"]; n != 0 {
		t.Errorf("%d connections open after Close", n)
	}
}

// BenchmarkNodeDown measures what a key on a down node costs: the Tier's
// Get answering ErrNodeDown, and a chain Get that gets past it and is
// answered by bbolt.
func BenchmarkNodeDown(b *testing.B) {
	ctx := context.Background()
	refused := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(b))
	mc, err := New([]string{refused}, WithFailureLimit(1), WithRetryTimeout(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	defer mc.Close() // the cache closes it too; closing twice is fine
	disk, err := boltdb.Open(b.TempDir()+"/c.db", boltdb.WithNoSync(true))
	if err != nil {
		b.Fatal(err)
	}
	src := tier.LoaderFunc(func(_ context.Context, keys []string) (map[string][]byte, error) {
		return map[string][]byte{keys[0]: make([]byte, 100)}, nil
	})
	cache, err := tier.New(src, tier.WithTier(mc, time.Hour), tier.WithTier(disk, time.Hour))
	if err != nil {
		disk.Close()
		b.Fatal(err)
	}
	defer cache.Close()
	const key = "bench:key:0000000042"
	if _, err := cache.Get(ctx, key); err != nil { // marks the node down, fills bbolt
		b.Fatal(err)
	}
	if err := disk.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("tier", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := mc.Get(ctx, key); !errors.Is(err, ErrNodeDown) {
				b.Fatal(err)
			}
		}
	})
	b.Run("chain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cache.Get(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	})
}
