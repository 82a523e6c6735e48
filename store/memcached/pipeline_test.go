package memcached

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/clocktest"
	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/store/memcached/ring"
	"github.com/tiercache/tiercache/tier"
)

// outcomes collects what AddBulk reports, and fails the test on a key
// reported twice.
type outcomes struct {
	t  *testing.T
	mu sync.Mutex
	m  map[string]error
}

func newOutcomes(t *testing.T) *outcomes { return &outcomes{t: t, m: make(map[string]error)} }

func (o *outcomes) done(key string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, dup := o.m[key]; dup {
		o.t.Errorf("%q reported twice", key)
	}
	o.m[key] = err
}

func (o *outcomes) get(key string) (error, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	err, ok := o.m[key]
	return err, ok
}

func (o *outcomes) count(match func(error) bool) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, err := range o.m {
		if match(err) {
			n++
		}
	}
	return n
}

type kv struct {
	key string
	e   tier.Entry
}

func seqOf(items []kv) iter.Seq2[string, tier.Entry] {
	return func(yield func(string, tier.Entry) bool) {
		for _, it := range items {
			if !yield(it.key, it.e) {
				return
			}
		}
	}
}

// bulkSetups are where the AddBulk tests send their adds: memcached on
// the meta protocol, memcached on the classic protocol, and nutcracker in
// front of two memcached, whose protocol the Tier finds out by itself.
var bulkSetups = []leaseSetup{
	metaSetup,
	classicSetup,
	{name: "nutcracker", protocol: LeaseProtocolAuto, proxied: true},
}

// AddBulk stores what Add would store, refuses what Add would refuse, and
// overwrites nothing, on every protocol and through nutcracker; and a full
// run costs the node no error.
func TestAddBulk(t *testing.T) {
	t.Parallel()
	forSetups(t, bulkSetups, func(t *testing.T, s leaseSetup) {
		clock := clocktest.New(time.Now().Truncate(time.Millisecond))
		tg := s.start(t)
		tr := s.client(t, tg.addr, WithClock(clock))
		ctx := context.Background()
		now := clock.Now()
		var items []kv
		present := make(map[string]string) // key: the value live traffic wrote
		for i := range 2000 {
			key := fmt.Sprintf("bulk:%05d", i)
			items = append(items, kv{key, tier.Entry{Value: []byte(strings.Repeat("v", i%200)), Expires: now.Add(time.Hour)}})
			if i%7 == 3 {
				present[key] = "live traffic " + key
			}
		}
		special := []kv{
			{"with space and a long tail " + strings.Repeat("x", 300), tier.Entry{Value: []byte("hashed"), Expires: now.Add(time.Minute)}},
			{"forever", tier.Entry{Value: []byte("no expiry")}},
			{"empty", tier.Entry{Value: []byte{}, Expires: now.Add(time.Minute)}},
			{"expired", tier.Entry{Value: []byte("x"), Expires: now.Add(-time.Second)}},
			{"too large", tier.Entry{Value: make([]byte, DefaultMaxItemSize), Expires: now.Add(time.Minute)}},
			{"present", tier.Entry{Value: []byte("from the warmup"), Expires: now.Add(time.Minute)}},
		}
		items = append(items, special...)
		present["present"] = "live traffic"
		for k, v := range present {
			if err := tr.Set(ctx, k, tier.Entry{Value: []byte(v), Expires: now.Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}

		got := newOutcomes(t)
		sent := time.Now()
		if err := tr.AddBulk(ctx, seqOf(items), got.done); err != nil {
			t.Fatal(err)
		}
		// An hour and a second (see expiration), counted on memcached's
		// own clock, which ticks once a second: short by the seconds since
		// the add.
		ttl := tg.ttl(t, "bulk:00001")
		var left int
		if _, err := fmt.Sscanf(ttl, "HD t%d", &left); err != nil || left > 3601 || left < 3601-1-int(time.Since(sent)/time.Second) {
			t.Errorf("TTL sent: %q, want an hour", ttl)
		}
		if ttl := tg.ttl(t, "forever"); ttl != "HD t-1" {
			t.Errorf("TTL of an entry that never expires: %q", ttl)
		}
		for _, it := range items {
			err, ok := got.get(it.key)
			_, isPresent := present[it.key]
			switch {
			case !ok:
				t.Errorf("%.40q not reported", it.key)
			case isPresent:
				if !errors.Is(err, tier.ErrNotStored) {
					t.Errorf("%.40q: %v, want ErrNotStored", it.key, err)
				}
			case it.key == "too large":
				if !errors.Is(err, tier.ErrTooLarge) {
					t.Errorf("too large: %v, want ErrTooLarge", err)
				}
			case err != nil:
				t.Errorf("%.40q: %v", it.key, err)
			}
		}
		// Everything stored reads back through Get exactly as Add would
		// have stored it: value, expiry, hashed key. What was there stays.
		checkStored := func() {
			t.Helper()
			for _, it := range items {
				e, err := tr.Get(ctx, it.key)
				if v, ok := present[it.key]; ok {
					if err != nil || string(e.Value) != v {
						t.Errorf("%.40q = %q, %v; the bulk add overwrote live data", it.key, e.Value, err)
					}
					continue
				}
				switch it.key {
				case "expired", "too large":
					if !errors.Is(err, tier.ErrMiss) {
						t.Errorf("%s was stored: %v", it.key, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("Get(%.40q): %v", it.key, err)
					continue
				}
				if string(e.Value) != string(it.e.Value) || !e.Expires.Equal(it.e.Expires) {
					t.Errorf("%.40q = %q expiring %v, want %q expiring %v", it.key, e.Value, e.Expires, it.e.Value, it.e.Expires)
				}
			}
		}
		checkStored()

		// Safe to run again: the second run, with other values, stores
		// nothing.
		again := make([]kv, len(items))
		for i, it := range items {
			again[i] = it
			again[i].e.Value = append([]byte("again "), it.e.Value...)
		}
		second := newOutcomes(t)
		if err := tr.AddBulk(ctx, seqOf(again), second.done); err != nil {
			t.Fatal(err)
		}
		if n := second.count(func(err error) bool { return errors.Is(err, tier.ErrNotStored) }); n != len(items)-2 {
			t.Errorf("second run: %d not stored, want %d", n, len(items)-2)
		}
		checkStored()

		c := tr.Counters()
		if c["bulk_sent"] != 2*int64(len(items)-2) || c["bulk_batches"] < 2*2000/DefaultBulkBatch {
			t.Errorf("counters: bulk_sent=%d bulk_batches=%d", c["bulk_sent"], c["bulk_batches"])
		}
		if c["expired_skipped"] != 2 || c["errors"] != 0 {
			t.Errorf("counters: expired_skipped=%d errors=%d, want 2 and 0", c["expired_skipped"], c["errors"])
		}
		ns := nodeStats(t, tr, tg.addr)
		if ns.State != "up" || ns.Counters["errors"] != 0 || ns.Counters["ejections"] != 0 {
			t.Errorf("node %s after two full runs: %v", ns.State, ns.Counters)
		}
		if s.protocol == LeaseProtocolAuto && ns.Counters["lease_protocol_classic"] != 1 {
			t.Errorf("nutcracker's node: %v, want the classic protocol", ns.Counters)
		}
	})
}

func TestAddBulkSpreadsOverNodes(t *testing.T) {
	t.Parallel()
	for _, p := range []LeaseProtocol{LeaseProtocolMeta, LeaseProtocolClassic} {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			a, b := testenv.Memcached(t), testenv.Memcached(t)
			tr, err := New([]string{a.Addr, b.Addr}, WithLeaseProtocol(p))
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			ctx := context.Background()
			var items []kv
			for i := range 3000 {
				items = append(items, kv{"k" + strconv.Itoa(i), tier.Entry{Value: []byte(strconv.Itoa(i))}})
			}
			got := newOutcomes(t)
			if err := tr.AddBulk(ctx, seqOf(items), got.done); err != nil {
				t.Fatal(err)
			}
			if n := got.count(func(err error) bool { return err != nil }); n != 0 {
				for k, err := range got.m {
					if err != nil {
						t.Fatalf("%d failures, %s: %v", n, k, err)
					}
				}
			}
			keys := make([]string, len(items))
			for i, it := range items {
				keys[i] = it.key
			}
			m, err := tr.GetMulti(ctx, keys)
			if err != nil || len(m) != len(keys) {
				t.Fatalf("GetMulti found %d of %d: %v", len(m), len(keys), err)
			}
			for _, ns := range tr.NodeStats() {
				if ns.Counters["hits"] < 1000 {
					t.Errorf("node %s holds %d keys: not spread", ns.Addr, ns.Counters["hits"])
				}
			}
		})
	}
}

// A node that cannot be dialed fails its entries at once, whether its
// protocol was set or is to be asked.
func TestAddBulkNodeDown(t *testing.T) {
	t.Parallel()
	for _, p := range LeaseProtocols() {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			tr, mc := newTestTier(t, WithLeaseProtocol(p))
			mc.Kill()
			items := make([]kv, 1000)
			for i := range items {
				items[i] = kv{"k" + strconv.Itoa(i), tier.Entry{Value: []byte("v")}}
			}
			got := newOutcomes(t)
			if err := tr.AddBulk(context.Background(), seqOf(items), got.done); err != nil {
				t.Fatal(err)
			}
			if n := got.count(func(err error) bool { return errors.Is(err, ErrUnavailable) }); n != len(items) {
				t.Errorf("%d of %d failed with ErrUnavailable", n, len(items))
			}
		})
	}
}

// A node that does not answer when asked which protocol it speaks gets
// nothing: its entries fail at once, and it is not marked down for it,
// as a lease's probe would not mark it down.
func TestAddBulkProtocolProbeUnanswered(t *testing.T) {
	t.Parallel()
	tr, addr := hungTier(t)
	items := make([]kv, 1000)
	for i := range items {
		items[i] = kv{"k" + strconv.Itoa(i), tier.Entry{Value: []byte("v")}}
	}
	got := newOutcomes(t)
	if err := tr.AddBulk(context.Background(), seqOf(items), got.done); err != nil {
		t.Fatal(err)
	}
	probeFailed := func(err error) bool {
		return errors.Is(err, ErrUnavailable) && strings.Contains(err.Error(), "protocol probe")
	}
	if n := got.count(probeFailed); n != len(items) {
		t.Errorf("%d of %d failed with the probe's error", n, len(items))
	}
	ns := nodeStats(t, tr, addr)
	if ns.State != "up" || ns.Counters["ejections"] != 0 || ns.Counters["requests"] != 0 {
		t.Errorf("node %s, %v; want up, and sent nothing", ns.State, ns.Counters)
	}
	if c := tr.Counters(); c["lease_protocol_probes"] != 1 || c["bulk_sent"] != 0 {
		t.Errorf("counters %v, want one probe and nothing sent", c)
	}
}

// A server whose item size limit is below the Tier's refuses an item as
// too large; on every protocol that fails the entry it belongs to, and
// only that one.
func TestAddBulkServerTooLarge(t *testing.T) {
	t.Parallel()
	forSetups(t, bulkSetups, func(t *testing.T, s leaseSetup) {
		tg := s.start(t)
		tr := s.client(t, tg.addr, WithMaxItemSize(2<<20)) // the servers' is 1 MiB
		ctx := context.Background()
		for _, k := range []string{"before", "after"} {
			if err := tr.Set(ctx, k, tier.Entry{Value: []byte("live")}); err != nil {
				t.Fatal(err)
			}
		}
		// The meta protocol's SERVER_ERROR carries no opaque: between two
		// commands answered NS it can only be the one in the middle's.
		items := []kv{
			{"before", tier.Entry{Value: []byte("bulk")}},
			{"huge", tier.Entry{Value: make([]byte, 3<<19)}},
			{"after", tier.Entry{Value: []byte("bulk")}},
			{"fresh", tier.Entry{Value: []byte("bulk")}},
		}
		got := newOutcomes(t)
		if err := tr.AddBulk(ctx, seqOf(items), got.done); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			key  string
			want error
		}{{"before", tier.ErrNotStored}, {"huge", tier.ErrTooLarge}, {"after", tier.ErrNotStored}, {"fresh", nil}} {
			if err, _ := got.get(c.key); !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
				t.Errorf("%s: %v, want %v", c.key, err, c.want)
			}
		}
		if _, err := tr.Get(ctx, "huge"); !errors.Is(err, tier.ErrMiss) {
			t.Errorf("Get(huge): %v, want a miss", err)
		}
		if e := mustGet(t, tr, "fresh"); string(e.Value) != "bulk" {
			t.Errorf("fresh = %q", e.Value)
		}
		ns := nodeStats(t, tr, tg.addr)
		if ns.State != "up" || ns.Counters["errors"] != 0 {
			t.Errorf("node %s after a refusal: %v", ns.State, ns.Counters)
		}
	})
}

// A memcached behind nutcracker dies in the middle of a warmup through
// it: nutcracker refuses the adds of that server's keys, which fail; the
// others are stored, the run finishes, and the proxy, which is the Tier's
// node, is not marked down.
func TestAddBulkThroughNutcrackerServerDown(t *testing.T) {
	t.Parallel()
	tg := bulkSetups[2].start(t)
	tr := bulkSetups[2].client(t, tg.addr, WithFailureLimit(1))
	placement, err := ring.New([]ring.Node{{Addr: tg.backends[0].Addr, Weight: 1, Name: "node0"}, {Addr: tg.backends[1].Addr, Weight: 1, Name: "node1"}},
		ring.Config{Hash: "fnv1a_64", Distribution: "ketama"})
	if err != nil {
		t.Fatal(err)
	}
	const n, killAt = 20000, 5000
	items := make([]kv, n)
	for i := range items {
		items[i] = kv{fmt.Sprintf("warm:%06d", i), tier.Entry{Value: []byte("v")}}
	}
	entries := func(yield func(string, tier.Entry) bool) {
		for i, it := range items {
			if i == killAt {
				tg.backends[1].Kill()
			}
			if !yield(it.key, it.e) {
				return
			}
		}
	}
	got := newOutcomes(t)
	if err := tr.AddBulk(context.Background(), entries, got.done); err != nil {
		t.Fatal(err)
	}
	var stored, failed int
	for i, it := range items {
		err, ok := got.get(it.key)
		onDead := placement.Locate(it.key) == 1
		switch {
		case !ok:
			t.Fatalf("%s not reported", it.key)
		case !onDead && err != nil:
			t.Errorf("%s, on the live server: %v", it.key, err)
		case onDead && i >= killAt && !errors.Is(err, ErrUnavailable):
			t.Errorf("%s, on the dead server: %v, want ErrUnavailable", it.key, err)
		case err == nil:
			stored++
		default:
			failed++
		}
	}
	if stored == 0 || failed == 0 {
		t.Errorf("%d entries stored, %d failed; want some of each", stored, failed)
	}
	ns := nodeStats(t, tr, tg.addr)
	if ns.State != "up" || ns.Counters["ejections"] != 0 || ns.Counters["errors"] != 0 {
		t.Errorf("nutcracker's node %s, %v; want it up, and its refusals not counted as its errors", ns.State, ns.Counters)
	}
}

// Every entry AddBulk took is reported once, even when ctx ends halfway.
func TestAddBulkCancel(t *testing.T) {
	t.Parallel()
	forSetups(t, bulkSetups, func(t *testing.T, s leaseSetup) {
		tg := s.start(t)
		tr := s.client(t, tg.addr)
		ctx, cancel := context.WithCancel(context.Background())
		got := newOutcomes(t)
		taken := 0
		entries := func(yield func(string, tier.Entry) bool) {
			for i := 0; ; i++ {
				if i == 5000 {
					cancel()
				}
				taken++
				if !yield("k"+strconv.Itoa(i), tier.Entry{Value: []byte("v")}) {
					return
				}
				if i > 100000 {
					t.Error("AddBulk did not stop taking entries")
					return
				}
			}
		}
		err := tr.AddBulk(ctx, entries, got.done)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("AddBulk = %v, want context.Canceled", err)
		}
		if n := got.count(func(error) bool { return true }); n != taken {
			t.Errorf("%d entries reported, %d taken", n, taken)
		}
	})
}

// fakeBulk answers bulk adds of either protocol as a script says: reply(i)
// is the line sent after command i of a connection's batch (numbered from
// the last mn on the meta protocol, from the first command on the
// classic one); "" is success: no reply to a quiet ms, STORED to an add.
// "<close>" closes the connection instead.
func fakeBulk(t *testing.T, reply func(i int) string) *fakeServer {
	return startFakeServer(t, func(c net.Conn, r *bufio.Reader) {
		w := bufio.NewWriter(c)
		i := 0
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			f := strings.Fields(line)
			switch {
			case len(f) == 1 && f[0] == "mn":
				w.WriteString("MN\r\n")
				w.Flush()
				i = 0
			case len(f) > 2 && f[0] == "ms", len(f) == 5 && f[0] == "add":
				size := f[2]
				if f[0] == "add" {
					size = f[4]
				}
				n, _ := strconv.Atoi(size)
				if _, err := r.Discard(n + 2); err != nil {
					return
				}
				s := reply(i)
				i++
				switch {
				case s == "<close>":
					w.Flush()
					return
				case s == "" && f[0] == "add":
					s = "STORED"
				}
				if s != "" {
					w.WriteString(s + "\r\n")
				}
				if f[0] == "add" {
					w.Flush()
				}
			default:
				w.WriteString("ERROR\r\n")
				w.Flush()
			}
		}
	})
}

func TestAddBulkAttributesReplies(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		proto LeaseProtocol
		reply func(i int) string
		// want(i) is the outcome of command i: "" stored, "NS", "fail",
		// "too large".
		want func(i int) string
	}{
		{
			name:  "not stored by opaque",
			proto: LeaseProtocolMeta,
			reply: func(i int) string {
				if i%3 == 0 {
					return "NS O" + strconv.Itoa(i)
				}
				return ""
			},
			want: func(i int) string {
				if i%3 == 0 {
					return "NS"
				}
				return ""
			},
		},
		{
			// A server error carries no opaque: it fails every command
			// it may belong to, between the replies that have one.
			name:  "server error between two tied replies",
			proto: LeaseProtocolMeta,
			reply: func(i int) string {
				switch i {
				case 2:
					return "NS O2"
				case 5:
					return "SERVER_ERROR out of memory storing object"
				case 8:
					return "NS O8"
				}
				return ""
			},
			want: func(i int) string {
				switch {
				case i == 2 || i == 8:
					return "NS"
				case i > 2 && i < 8:
					return "fail"
				}
				return ""
			},
		},
		{
			name:  "client error breaks the connection",
			proto: LeaseProtocolMeta,
			reply: func(i int) string {
				switch i {
				case 1:
					return "NS O1"
				case 4:
					return "CLIENT_ERROR bad data chunk"
				}
				return ""
			},
			want: func(i int) string {
				switch {
				case i == 1:
					return "NS"
				case i > 1:
					return "fail"
				}
				return ""
			},
		},
		{
			// Every add is answered, in order: a server error is its
			// own command's, and the connection goes on.
			name:  "classic: one reply per add",
			proto: LeaseProtocolClassic,
			reply: func(i int) string {
				switch {
				case i == 5:
					return "SERVER_ERROR out of memory storing object"
				case i == 7:
					return "SERVER_ERROR object too large for cache"
				case i == 11:
					return "SERVER_ERROR Connection refused"
				case i%3 == 0:
					return "NOT_STORED"
				}
				return ""
			},
			want: func(i int) string {
				switch {
				case i == 5 || i == 11:
					return "fail"
				case i == 7:
					return "too large"
				case i%3 == 0:
					return "NS"
				}
				return ""
			},
		},
		{
			name:  "classic: client error breaks the connection",
			proto: LeaseProtocolClassic,
			reply: func(i int) string {
				switch i {
				case 1:
					return "NOT_STORED"
				case 4:
					return "CLIENT_ERROR bad data chunk"
				}
				return ""
			},
			want: func(i int) string {
				switch {
				case i == 1:
					return "NS"
				case i >= 4:
					return "fail"
				}
				return ""
			},
		},
		{
			name:  "classic: connection closed mid-batch",
			proto: LeaseProtocolClassic,
			reply: func(i int) string {
				if i == 6 {
					return "<close>"
				}
				return ""
			},
			want: func(i int) string {
				if i >= 6 {
					return "fail"
				}
				return ""
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := fakeBulk(t, tc.reply)
			tr, err := New([]string{fs.addr}, WithLeaseProtocol(tc.proto))
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			const n = 20 // one batch
			items := make([]kv, n)
			for i := range items {
				items[i] = kv{"k" + strconv.Itoa(i), tier.Entry{Value: []byte("v")}}
			}
			got := newOutcomes(t)
			if err := tr.AddBulk(context.Background(), seqOf(items), got.done); err != nil {
				t.Fatal(err)
			}
			for i, it := range items {
				err, _ := got.get(it.key)
				var outcome string
				switch {
				case err == nil:
				case errors.Is(err, tier.ErrNotStored):
					outcome = "NS"
				case errors.Is(err, tier.ErrTooLarge):
					outcome = "too large"
				case errors.Is(err, ErrUnavailable):
					outcome = "fail"
				default:
					outcome = err.Error()
				}
				if want := tc.want(i); outcome != want {
					t.Errorf("command %d: %q (%v), want %q", i, outcome, err, want)
				}
			}
		})
	}
}

func TestAddBulkClosed(t *testing.T) {
	t.Parallel()
	tr, _ := newTestTier(t)
	tr.Close()
	err := tr.AddBulk(context.Background(), seqOf(nil), func(string, error) {})
	if !errors.Is(err, tier.ErrClosed) {
		t.Errorf("AddBulk after Close: %v", err)
	}
}

// Every window stores every entry, in batches of the size asked for.
func TestAddBulkWindow(t *testing.T) {
	t.Parallel()
	forSetups(t, bulkSetups, func(t *testing.T, s leaseSetup) {
		tg := s.start(t)
		for _, w := range []struct{ window, batch int }{{1, 1}, {1, 100}, {2, 7}, {4, 256}} {
			name := fmt.Sprintf("%dx%d", w.window, w.batch)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				tr := s.client(t, tg.addr, WithBulkWindow(w.window, w.batch))
				ctx := context.Background()
				var items []kv
				keys := make([]string, 0, 1000)
				for i := range 1000 {
					items = append(items, kv{fmt.Sprintf("win:%s:%04d", name, i), tier.Entry{Value: []byte(strconv.Itoa(i))}})
					keys = append(keys, items[i].key)
				}
				got := newOutcomes(t)
				if err := tr.AddBulk(ctx, seqOf(items), got.done); err != nil {
					t.Fatal(err)
				}
				if n := got.count(func(err error) bool { return err != nil }); n != 0 {
					t.Fatalf("%d failures", n)
				}
				if m, err := tr.GetMulti(ctx, keys); err != nil || len(m) != len(keys) {
					t.Fatalf("GetMulti found %d of %d: %v", len(m), len(keys), err)
				}
				c := tr.Counters()
				if want := int64((len(items) + w.batch - 1) / w.batch); c["bulk_batches"] != want || c["bulk_sent"] != int64(len(items)) {
					t.Errorf("bulk_batches=%d bulk_sent=%d, want %d and %d", c["bulk_batches"], c["bulk_sent"], want, len(items))
				}
			})
		}
	})
}

func TestWithBulkWindowInvalid(t *testing.T) {
	t.Parallel()
	for _, w := range [][2]int{{0, 128}, {65, 128}, {1, 0}, {1, 4097}, {-1, -1}} {
		tr, err := New([]string{"127.0.0.1:1"}, WithBulkWindow(w[0], w[1]))
		if !errors.Is(err, ErrInvalidOption) {
			if tr != nil {
				tr.Close()
			}
			t.Errorf("WithBulkWindow(%d, %d): %v, want ErrInvalidOption", w[0], w[1], err)
		}
	}
}
