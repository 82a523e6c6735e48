package memcached

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
)

// leaseSetup is where the Tiers of a lease test send their commands.
type leaseSetup struct {
	name     string
	protocol LeaseProtocol
	proxied  bool // through a nutcracker in front of two memcached
}

var (
	metaSetup    = leaseSetup{name: "meta", protocol: LeaseProtocolMeta}
	classicSetup = leaseSetup{name: "classic", protocol: LeaseProtocolClassic}
	proxiedSetup = leaseSetup{name: "classic-nutcracker", protocol: LeaseProtocolClassic, proxied: true}
	// allSetups are those the lease protocol tests run on.
	allSetups = []leaseSetup{metaSetup, classicSetup, proxiedSetup}
)

// forSetups runs f as a parallel subtest for each setup.
func forSetups(t *testing.T, setups []leaseSetup, f func(t *testing.T, s leaseSetup)) {
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			f(t, s)
		})
	}
}

// leaseTarget is the servers of one lease test.
type leaseTarget struct {
	addr     string                     // what the Tiers are given: memcached, or nutcracker
	backends []*testenv.MemcachedServer // the memcached that hold the items
}

// start starts the setup's servers.
func (s leaseSetup) start(t *testing.T) leaseTarget {
	t.Helper()
	if !s.proxied {
		mc := testenv.Memcached(t)
		return leaseTarget{addr: mc.Addr, backends: []*testenv.MemcachedServer{mc}}
	}
	backends := []*testenv.MemcachedServer{testenv.Memcached(t), testenv.Memcached(t)}
	return leaseTarget{addr: startNutcracker(t, backends...).Addr, backends: backends}
}

// client returns a Tier on addr with the setup's protocol, closed when the
// test ends. Its timeout is generous: the race detector on a shared
// machine must not get a node marked down.
func (s leaseSetup) client(t *testing.T, addr string, opts ...Option) *Tier {
	t.Helper()
	tr, err := New([]string{addr}, append([]Option{WithLeaseProtocol(s.protocol), WithTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// startNutcracker starts a nutcracker pool over backends (fnv1a_64,
// ketama), as operators put it in front of memcached.
func startNutcracker(t testing.TB, backends ...*testenv.MemcachedServer) *testenv.NutcrackerServer {
	t.Helper()
	var sb strings.Builder
	fmt.Fprintf(&sb, "alpha:\n  listen: 127.0.0.1:%d\n  hash: fnv1a_64\n  distribution: ketama\n  timeout: 5000\n  servers:\n", testenv.FreePort(t))
	for i, mc := range backends {
		fmt.Fprintf(&sb, "   - %s:1 node%d\n", mc.Addr, i)
	}
	return testenv.Nutcracker(t, sb.String())
}

// ttl asks the backend that holds wire, with "mg <key> t", how many
// seconds it has left (see metaTTL); "EN" when none holds it.
func (tg leaseTarget) ttl(t *testing.T, wire string) string {
	t.Helper()
	for _, mc := range tg.backends {
		if reply := metaTTL(t, mc.Addr, wire); reply != "EN" {
			return reply
		}
	}
	return "EN"
}

// twoClients starts the setup's servers and returns two Tiers on them:
// two processes sharing one memcached, as far as leases can tell.
func twoClients(t *testing.T, s leaseSetup, opts ...Option) (a, b *Tier, tg leaseTarget) {
	t.Helper()
	tg = s.start(t)
	return s.client(t, tg.addr, opts...), s.client(t, tg.addr, opts...), tg
}

func leaseOne(t *testing.T, tr *Tier, key string, req tier.LeaseRequest) tier.Lease {
	t.Helper()
	if req.TTL == 0 {
		req.TTL = 3 * time.Second
	}
	if req.Now.IsZero() {
		req.Now = time.Now()
	}
	ls, err := tr.Lease(context.Background(), []string{key}, req)
	if err != nil {
		t.Fatalf("Lease(%.40q): %v", key, err)
	}
	l, ok := ls[key]
	if !ok {
		t.Fatalf("Lease(%.40q): no answer", key)
	}
	return l
}

func entryWrite(v string, ttl time.Duration, m tier.Marker) tier.LeaseWrite {
	e := tier.Entry{Value: []byte(v), Expires: time.Now().Add(ttl).Truncate(time.Millisecond), Loaded: time.Now()}
	return tier.LeaseWrite{Entry: &e, Marker: m}
}

func TestLeaseOneWinnerAndFill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	forSetups(t, allSetups, func(t *testing.T, s leaseSetup) {
		for _, key := range []string{"k", strings.Repeat("long key ", 40)} {
			t.Run(fmt.Sprintf("%d-byte key", len(key)), func(t *testing.T) {
				a, b, tg := twoClients(t, s)
				la := leaseOne(t, a, key, tier.LeaseRequest{})
				if la.State != tier.LeaseWon || la.Token == 0 || la.Entry != nil || !la.Marker.At.IsZero() {
					t.Fatalf("first lease = %+v, want won with a token", la)
				}
				for _, tr := range []*Tier{a, b, a} {
					if l := leaseOne(t, tr, key, tier.LeaseRequest{}); l.State != tier.LeaseHeld {
						t.Fatalf("lease while held = %+v, want held", l)
					}
				}
				// What holds the lease is a miss, not garbage, through gomemcache too.
				if _, err := b.Get(ctx, key); !errors.Is(err, tier.ErrMiss) {
					t.Fatalf("Get of a leased key: %v, want ErrMiss", err)
				}
				if m, err := b.GetMulti(ctx, []string{key, "other"}); err != nil || len(m) != 0 {
					t.Fatalf("GetMulti of a leased key = %v, %v", m, err)
				}
				if n := b.Counters()["decode_errors"]; n != 0 {
					t.Fatalf("decode_errors = %d, want 0", n)
				}
				wire, hashed := b.keys.encode(key)
				raw, err := testenv.RawClient(tg.addr).Get(wire)
				if err != nil {
					t.Fatal(err)
				}
				if s.protocol == LeaseProtocolMeta {
					if raw.Flags != 0 || len(raw.Value) != 0 {
						t.Fatalf("raw get of the stub = %+v; want an empty item with flags 0", raw)
					}
				} else {
					rec, err := decodeRecord(key, hashed, raw.Value)
					if raw.Flags != recordFlags(hashed) || err != nil || rec.leaseUntil.IsZero() || rec.nonce == 0 || rec.entry != nil {
						t.Fatalf("raw get of the lease = %+v: %+v, %v; want a record with a lease and a nonce", raw, rec, err)
					}
				}

				if err := a.Fill(ctx, key, la, entryWrite("v1", time.Minute, tier.Marker{})); err != nil {
					t.Fatal(err)
				}
				if l := leaseOne(t, b, key, tier.LeaseRequest{}); l.State != tier.LeaseHit || string(l.Entry.Value) != "v1" {
					t.Fatalf("lease after fill = %+v, want a hit on v1", l)
				}
				if e := mustGet(t, b, key); string(e.Value) != "v1" {
					t.Fatalf("Get after fill = %q", e.Value)
				}
				if err := a.Fill(ctx, key, la, entryWrite("again", time.Minute, tier.Marker{})); !errors.Is(err, tier.ErrLeaseLost) {
					t.Fatalf("second fill with the same lease: %v, want ErrLeaseLost", err)
				}
				if c := a.Counters(); c["lease_fills"] != 1 || c["lease_fills_refused"] != 1 {
					t.Fatalf("counters %v, want one fill and one refused", c)
				}
			})
		}
	})
}

// The stale set: a load wins the lease and reads v1; the key is updated and
// invalidated; the load's fill comes last and must be refused.
func TestLeaseFillRefusedAfterInvalidate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	forSetups(t, allSetups, func(t *testing.T, s leaseSetup) {
		a, b, tg := twoClients(t, s)
		la := leaseOne(t, a, "k", tier.LeaseRequest{})
		at := time.Now()
		m := tier.Marker{At: at, Until: at.Add(time.Hour)}
		if err := b.Invalidate(ctx, "k", tier.LeaseWrite{Marker: m}); err != nil {
			t.Fatal(err)
		}
		if err := a.Fill(ctx, "k", la, entryWrite("v1", time.Minute, tier.Marker{})); !errors.Is(err, tier.ErrLeaseLost) {
			t.Fatalf("fill after invalidate: %v, want ErrLeaseLost", err)
		}
		if _, err := a.Get(ctx, "k"); !errors.Is(err, tier.ErrMiss) {
			t.Fatalf("Get after the refused fill: %v, want a miss", err)
		}
		// The marker blocks adds: warmup and unleased backfills.
		if err := a.Add(ctx, "k", tier.Entry{Value: []byte("old")}); !errors.Is(err, tier.ErrNotStored) {
			t.Fatalf("Add over a marker: %v, want ErrNotStored", err)
		}
		var bulk []error
		entries := iter.Seq2[string, tier.Entry](func(yield func(string, tier.Entry) bool) { yield("k", tier.Entry{Value: []byte("old")}) })
		if err := a.AddBulk(ctx, entries, func(_ string, err error) { bulk = append(bulk, err) }); err != nil || len(bulk) != 1 || !errors.Is(bulk[0], tier.ErrNotStored) {
			t.Fatalf("AddBulk over a marker: %v, %v; want ErrNotStored", err, bulk)
		}
		// The next lease is taken over the marker, and reports it.
		l := leaseOne(t, a, "k", tier.LeaseRequest{})
		if l.State != tier.LeaseWon || !l.Marker.At.Equal(at.Truncate(time.Microsecond)) || !l.Marker.Until.Equal(m.Until.Truncate(time.Microsecond)) {
			t.Fatalf("lease over a marker = %+v, want won, with marker %v", l, m)
		}
		if l2 := leaseOne(t, b, "k", tier.LeaseRequest{}); l2.State != tier.LeaseHeld || !l2.Marker.At.Equal(l.Marker.At) {
			t.Fatalf("second lease over the marker = %+v, want held with the marker", l2)
		}
		// Its fill keeps the marker, and the item lives as long as the marker.
		if err := a.Fill(ctx, "k", l, entryWrite("v2", time.Minute, l.Marker)); err != nil {
			t.Fatal(err)
		}
		if e := mustGet(t, b, "k"); string(e.Value) != "v2" {
			t.Fatalf("Get = %q, want v2", e.Value)
		}
		wire, _ := a.keys.encode("k")
		if ttl := tg.ttl(t, wire); ttl < "HD t3590" || ttl > "HD t3601" {
			t.Fatalf("item TTL %q, want the marker's hour", ttl)
		}
		if l := leaseOne(t, b, "k", tier.LeaseRequest{}); l.State != tier.LeaseHit || !l.Marker.At.Equal(at.Truncate(time.Microsecond)) {
			t.Fatalf("lease on the filled key = %+v, want a hit carrying the marker", l)
		}
		// Once the value expires, the marker is still there for the next
		// lease, taken over the expired value.
		later := tier.LeaseRequest{Now: time.Now().Add(2 * time.Minute)}
		if l := leaseOne(t, b, "k", later); l.State != tier.LeaseWon || l.Entry == nil || string(l.Entry.Value) != "v2" || !l.Marker.At.Equal(at.Truncate(time.Microsecond)) {
			t.Fatalf("lease on the expired value = %+v, want won, with the stale value and the marker", l)
		}
		if l := leaseOne(t, a, "k", later); l.State != tier.LeaseHeld || l.Entry == nil || string(l.Entry.Value) != "v2" {
			t.Fatalf("second lease on the expired value = %+v, want held, with the stale value", l)
		}
		if ttl := tg.ttl(t, wire); ttl < "HD t3590" || ttl > "HD t3601" {
			t.Fatalf("item TTL after the takeover %q, want the marker's hour still", ttl)
		}
	})
}

// A holder that never fills: the lease it took over an item runs out by
// the lease's own clock, and the next caller takes it over; the old
// holder's fill is refused.
func TestLeaseTakeoverAfterHolderVanishes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	forSetups(t, allSetups, func(t *testing.T, s leaseSetup) {
		a, b, _ := twoClients(t, s)
		now := time.Now()
		if err := a.Invalidate(ctx, "k", tier.LeaseWrite{Marker: tier.Marker{At: now}}); err != nil {
			t.Fatal(err)
		}
		dead := leaseOne(t, a, "k", tier.LeaseRequest{Now: now, TTL: 2 * time.Second})
		if dead.State != tier.LeaseWon {
			t.Fatalf("lease = %+v", dead)
		}
		if l := leaseOne(t, b, "k", tier.LeaseRequest{Now: now.Add(time.Second), TTL: 2 * time.Second}); l.State != tier.LeaseHeld {
			t.Fatalf("lease before it runs out = %+v, want held", l)
		}
		l := leaseOne(t, b, "k", tier.LeaseRequest{Now: now.Add(3 * time.Second), TTL: 2 * time.Second})
		if l.State != tier.LeaseWon {
			t.Fatalf("lease after it ran out = %+v, want won", l)
		}
		if err := a.Fill(ctx, "k", dead, entryWrite("late", time.Minute, dead.Marker)); !errors.Is(err, tier.ErrLeaseLost) {
			t.Fatalf("fill of the lost lease: %v, want ErrLeaseLost", err)
		}
		if err := b.Fill(ctx, "k", l, entryWrite("v", time.Minute, l.Marker)); err != nil {
			t.Fatal(err)
		}
		if n := b.Counters()["lease_takeovers"]; n != 1 {
			t.Fatalf("lease_takeovers = %d, want 1", n)
		}
	})
}

// A holder that dies with the lease of a key that was absent: the lease
// ends by itself (the meta protocol's stub expires on memcached's clock;
// the classic protocol's record too, and its lease time passes), and
// another caller wins it.
func TestLeaseStubExpires(t *testing.T) {
	t.Parallel()
	forSetups(t, allSetups, func(t *testing.T, s leaseSetup) {
		a, b, _ := twoClients(t, s)
		if l := leaseOne(t, a, "k", tier.LeaseRequest{TTL: time.Second}); l.State != tier.LeaseWon {
			t.Fatalf("lease = %+v", l)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			l := leaseOne(t, b, "k", tier.LeaseRequest{TTL: time.Second})
			if l.State == tier.LeaseWon {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("lease still %v 10s after a 1s lease", l.State)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// A holder gives its lease up: the next caller wins at once, over an
// absent key as over a marker, which the release keeps.
func TestLeaseRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	forSetups(t, allSetups, func(t *testing.T, s leaseSetup) {
		a, b, _ := twoClients(t, s)
		l := leaseOne(t, a, "stub", tier.LeaseRequest{})
		if err := a.Release(ctx, "stub", l); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Get(ctx, "stub"); !errors.Is(err, tier.ErrMiss) {
			t.Fatalf("Get after release: %v, want a miss", err)
		}
		if l := leaseOne(t, b, "stub", tier.LeaseRequest{}); l.State != tier.LeaseWon {
			t.Fatalf("lease after release = %+v, want won", l)
		}
		if err := a.Release(ctx, "stub", l); err != nil {
			t.Fatalf("release of a lease no longer held: %v", err)
		}
		if l := leaseOne(t, a, "stub", tier.LeaseRequest{}); l.State != tier.LeaseHeld {
			t.Fatalf("lease after a stale release = %+v, want still held by b", l)
		}

		m := tier.Marker{At: time.Now(), Until: time.Now().Add(time.Hour)}
		if err := a.Invalidate(ctx, "marked", tier.LeaseWrite{Marker: m}); err != nil {
			t.Fatal(err)
		}
		l = leaseOne(t, a, "marked", tier.LeaseRequest{})
		if err := a.Release(ctx, "marked", l); err != nil {
			t.Fatal(err)
		}
		l = leaseOne(t, b, "marked", tier.LeaseRequest{})
		if l.State != tier.LeaseWon || l.Marker.At.IsZero() {
			t.Fatalf("lease after releasing one over a marker = %+v, want won with the marker kept", l)
		}
		if n := b.Counters()["decode_errors"] + a.Counters()["decode_errors"]; n != 0 {
			t.Fatalf("decode_errors = %d, want 0", n)
		}
	})
}

// Early refresh: a lease over a fresh value, while Get keeps serving it.
func TestLeaseRefreshOverFreshValue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	forSetups(t, allSetups, func(t *testing.T, s leaseSetup) {
		a, b, _ := twoClients(t, s)
		if err := a.Set(ctx, "k", tier.Entry{Value: []byte("v1"), Expires: time.Now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if l := leaseOne(t, a, "k", tier.LeaseRequest{}); l.State != tier.LeaseHit {
			t.Fatalf("plain lease on a fresh value = %+v, want hit", l)
		}
		l := leaseOne(t, a, "k", tier.LeaseRequest{Refresh: true})
		if l.State != tier.LeaseWon || l.Entry == nil || string(l.Entry.Value) != "v1" {
			t.Fatalf("refresh lease = %+v, want won over v1", l)
		}
		if l := leaseOne(t, b, "k", tier.LeaseRequest{Refresh: true}); l.State != tier.LeaseHeld {
			t.Fatalf("second refresh lease = %+v, want held", l)
		}
		if e := mustGet(t, b, "k"); string(e.Value) != "v1" {
			t.Fatalf("Get during the refresh = %q, want v1", e.Value)
		}
		if err := a.Release(ctx, "k", l); err != nil {
			t.Fatal(err)
		}
		if e := mustGet(t, b, "k"); string(e.Value) != "v1" {
			t.Fatalf("Get after a released refresh = %q, want v1", e.Value)
		}
	})
}

// A refresh of a value someone else has already refreshed finds the new
// value, loaded after the one it meant to replace: a hit, not a second
// load. A refresh of the value that is there takes the lease over it.
func TestLeaseRefreshFindsSomeoneElsesRefresh(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	forSetups(t, allSetups, func(t *testing.T, s leaseSetup) {
		a, _, _ := twoClients(t, s)
		loaded := time.Now().Add(-time.Second).Truncate(time.Millisecond)
		e := tier.Entry{Value: []byte("v2"), Expires: time.Now().Add(time.Minute), Loaded: loaded}
		if err := a.Set(ctx, "k", e); err != nil {
			t.Fatal(err)
		}
		if l := leaseOne(t, a, "k", tier.LeaseRequest{Refresh: true, Replacing: loaded.Add(-time.Minute)}); l.State != tier.LeaseHit || string(l.Entry.Value) != "v2" {
			t.Fatalf("refresh of a value replaced since = %+v, want a hit on v2", l)
		}
		if l := leaseOne(t, a, "k", tier.LeaseRequest{Refresh: true, Replacing: loaded}); l.State != tier.LeaseWon {
			t.Fatalf("refresh of the value there = %+v, want won", l)
		}
	})
}

// Set through Invalidate: the new value, readable by Get, kept as long as
// its marker.
func TestInvalidateWithValue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	forSetups(t, allSetups, func(t *testing.T, s leaseSetup) {
		a, _, tg := twoClients(t, s)
		if err := a.Set(ctx, "k", tier.Entry{Value: []byte("v1")}); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		w := entryWrite("v2", time.Minute, tier.Marker{At: now, Until: now.Add(24 * time.Hour)})
		if err := a.Invalidate(ctx, "k", w); err != nil {
			t.Fatal(err)
		}
		if e := mustGet(t, a, "k"); string(e.Value) != "v2" || !e.Expires.Equal(w.Entry.Expires) {
			t.Fatalf("Get = %+v, want v2", e)
		}
		wire, _ := a.keys.encode("k")
		if ttl := tg.ttl(t, wire); !strings.HasPrefix(ttl, "HD t86") {
			t.Fatalf("TTL %q, want about a day", ttl)
		}
		// Too large a value: the marker alone is stored.
		big := tier.Entry{Value: make([]byte, DefaultMaxItemSize)}
		if err := a.Invalidate(ctx, "k", tier.LeaseWrite{Entry: &big, Marker: w.Marker}); !errors.Is(err, tier.ErrTooLarge) {
			t.Fatalf("Invalidate with a huge value: %v, want ErrTooLarge", err)
		}
		if _, err := a.Get(ctx, "k"); !errors.Is(err, tier.ErrMiss) {
			t.Fatalf("Get after a too-large Set: %v, want a miss", err)
		}
		if l := leaseOne(t, a, "k", tier.LeaseRequest{}); l.State != tier.LeaseWon || l.Marker.At.IsZero() {
			t.Fatalf("lease = %+v, want won with the marker", l)
		}
	})
}

// A batch the size of a GetMulti, over keys spread across two memcached
// (two nodes of the Tier, or two servers behind nutcracker), some of them
// hashed: one round trip per node to find the keys held or filled, two on
// the classic protocol to win them.
func TestLeaseBatchRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	forSetups(t, allSetups, func(t *testing.T, s leaseSetup) {
		var (
			addrs    []string
			backends []*testenv.MemcachedServer
		)
		if s.proxied {
			tg := s.start(t)
			addrs, backends = []string{tg.addr}, tg.backends
		} else {
			addrs = []string{testenv.Memcached(t).Addr, testenv.Memcached(t).Addr}
		}
		newTier := func() *Tier {
			tr, err := New(addrs, WithLeaseProtocol(s.protocol), WithTimeout(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tr.Close() })
			return tr
		}
		a, b := newTier(), newTier()
		keys := make([]string, 500)
		for i := range keys {
			switch {
			case i%25 == 0:
				keys[i] = strings.Repeat("long key "+strconv.Itoa(i), 30)
			case i%10 == 0:
				keys[i] = "key with spaces " + strconv.Itoa(i)
			default:
				keys[i] = strconv.Itoa(i) + ":key" // fnv1a_64 spreads keys by their first bytes
			}
		}
		// The leases must outlive 500 fills through nutcracker on a
		// loaded machine: this test is about round trips, not expiry.
		req := tier.LeaseRequest{TTL: time.Minute, Now: time.Now()}
		// batch asks tr for every lease and checks their state and the
		// requests each node took.
		batch := func(tr *Tier, want tier.LeaseState, requests int64) map[string]tier.Lease {
			t.Helper()
			before := make(map[string]int64)
			for _, ns := range tr.NodeStats() {
				before[ns.Addr] = ns.Counters["requests"]
			}
			ls, err := tr.Lease(ctx, keys, req)
			if err != nil || len(ls) != len(keys) {
				t.Fatalf("Lease: %d answers, %v", len(ls), err)
			}
			for k, l := range ls {
				if l.State != want {
					t.Fatalf("lease of %.30q = %+v, want %v", k, l, want)
				}
			}
			for _, ns := range tr.NodeStats() {
				if got := ns.Counters["requests"] - before[ns.Addr]; got != requests {
					t.Errorf("node %s: %d requests for the batch, want %d", ns.Addr, got, requests)
				}
			}
			return ls
		}
		wonRequests := int64(1)
		if s.protocol == LeaseProtocolClassic {
			wonRequests = 2
		}
		won := batch(a, tier.LeaseWon, wonRequests)
		batch(b, tier.LeaseHeld, 1)
		for _, k := range keys {
			if err := a.Fill(ctx, k, won[k], entryWrite("v "+k, time.Minute, tier.Marker{})); err != nil {
				t.Fatal(err)
			}
		}
		m, err := b.GetMulti(ctx, keys)
		if err != nil || len(m) != len(keys) {
			t.Fatalf("GetMulti after the fills: %d values, %v", len(m), err)
		}
		for k, l := range batch(b, tier.LeaseHit, 1) {
			if string(l.Entry.Value) != "v "+k || string(m[k].Value) != "v "+k {
				t.Fatalf("%.30q: lease %q, GetMulti %q", k, l.Entry.Value, m[k].Value)
			}
		}
		wires := make([]string, len(keys))
		for i, k := range keys {
			wires[i], _ = a.keys.encode(k)
		}
		for _, mc := range backends {
			if held, err := testenv.RawClient(mc.Addr).GetMulti(wires); err != nil || len(held) < len(keys)/4 {
				t.Errorf("memcached %s behind nutcracker holds %d of the keys, %v; want them spread", mc.Addr, len(held), err)
			}
		}
	})
}

func TestLeaseNodeDown(t *testing.T) {
	t.Parallel()
	for _, p := range LeaseProtocols() {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			tr, mc := newTestTier(t, WithTimeout(100*time.Millisecond), WithLeaseProtocol(p))
			mc.Kill()
			ls, err := tr.Lease(context.Background(), []string{"a", "b"}, tier.LeaseRequest{TTL: time.Second, Now: time.Now()})
			if len(ls) != 0 || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Lease on a dead node = %v, %v; want nothing and ErrUnavailable", ls, err)
			}
			if err := tr.Invalidate(context.Background(), "a", tier.LeaseWrite{Marker: tier.Marker{At: time.Now()}}); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Invalidate on a dead node: %v, want ErrUnavailable", err)
			}
		})
	}
}

// After memcached restarts, the pooled lease connections are stale; the
// next lease still gets through.
func TestLeaseAfterRestart(t *testing.T) {
	t.Parallel()
	for _, p := range LeaseProtocols() {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			tr, mc := newTestTier(t, WithLeaseProtocol(p))
			leaseOne(t, tr, "k", tier.LeaseRequest{})
			mc.Restart()
			if l := leaseOne(t, tr, "k", tier.LeaseRequest{}); l.State != tier.LeaseWon {
				t.Fatalf("lease after restart = %+v, want won (the lease went with the old process)", l)
			}
		})
	}
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.UnixMicro(1_800_000_000_123_456)
	e := tier.Entry{Value: []byte("v"), Expires: time.UnixMilli(1_800_000_100_000), Loaded: at}
	for _, rec := range []record{
		{marker: tier.Marker{At: at}},
		{marker: tier.Marker{At: at, Until: at.Add(time.Hour)}, entry: &e},
		{leaseUntil: time.UnixMilli(1_800_000_005_000), entry: &e},
		{marker: tier.Marker{At: at}, leaseUntil: time.UnixMilli(1_800_000_005_000)},
		{leaseUntil: time.UnixMilli(1_800_000_005_000), nonce: 0xfeed_f00d_dead_beef},
		{marker: tier.Marker{At: at}, leaseUntil: time.UnixMilli(1_800_000_005_000), nonce: 1, entry: &e},
	} {
		for _, hashed := range []bool{false, true} {
			got, err := decodeRecord("key", hashed, encodeRecord("key", hashed, rec))
			if err != nil {
				t.Fatalf("%+v: %v", rec, err)
			}
			if !got.marker.At.Equal(rec.marker.At) || !got.marker.Until.Equal(rec.marker.Until) || !got.leaseUntil.Equal(rec.leaseUntil) || got.nonce != rec.nonce ||
				(got.entry == nil) != (rec.entry == nil) || got.entry != nil && string(got.entry.Value) != string(rec.entry.Value) {
				t.Errorf("round trip of %+v (hashed %v) = %+v", rec, hashed, got)
			}
		}
	}
	if _, err := decodeRecord("other", true, encodeRecord("key", true, record{entry: &e})); !errors.Is(err, errKeyMismatch) {
		t.Errorf("record of another key: %v, want errKeyMismatch", err)
	}
	if b := encodeRecord("k", false, record{nonce: 7}); len(b) != 2 || b[1] != 0 {
		t.Errorf("a nonce without a lease was encoded: %x", b)
	}
	for name, b := range map[string][]byte{
		"nonce without a lease": {recordVersion, recordNonce, 0, 0, 0, 0, 0, 0, 0, 7},
		"zero nonce":            {recordVersion, recordLease | recordNonce, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0},
		"short nonce":           {recordVersion, recordLease | recordNonce, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 7},
		"unknown bit":           {recordVersion, 1 << 4},
	} {
		if _, err := decodeRecord("k", false, b); !errors.Is(err, tier.ErrBadEnvelope) {
			t.Errorf("%s: %v, want ErrBadEnvelope", name, err)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	e := tier.Entry{Value: []byte("v"), Loaded: time.UnixMicro(5)}
	f.Add(encodeRecord("k", false, record{marker: tier.Marker{At: time.UnixMicro(7)}, entry: &e}), false)
	f.Add(encodeRecord("k", true, record{leaseUntil: time.UnixMilli(9)}), true)
	f.Add(encodeRecord("k", false, record{leaseUntil: time.UnixMilli(9), nonce: 3, entry: &e}), false)
	f.Add([]byte{1, 7}, false)
	f.Fuzz(func(t *testing.T, b []byte, hashed bool) {
		rec, err := decodeRecord("k", hashed, b)
		if err != nil {
			return
		}
		again, err := decodeRecord("k", hashed, encodeRecord("k", hashed, rec))
		if err != nil || !again.marker.At.Equal(rec.marker.At) || !again.leaseUntil.Equal(rec.leaseUntil) || again.nonce != rec.nonce || (again.entry == nil) != (rec.entry == nil) {
			t.Fatalf("re-encode of %+v gave %+v, %v", rec, again, err)
		}
	})
}
