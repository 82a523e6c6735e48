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

	"github.com/tiercache/tiercache/internal/testenv"
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

func TestAddBulk(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Now().Truncate(time.Millisecond)}
	tr, mc := newTestTier(t, WithClock(clock))
	ctx := context.Background()
	now := clock.Now()
	var items []kv
	for i := range 2000 {
		items = append(items, kv{fmt.Sprintf("bulk:%05d", i), tier.Entry{Value: []byte(strings.Repeat("v", i%200)), Expires: now.Add(time.Hour)}})
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
	live := tier.Entry{Value: []byte("live traffic"), Expires: now.Add(time.Minute)}
	if err := tr.Set(ctx, "present", live); err != nil {
		t.Fatal(err)
	}

	got := newOutcomes(t)
	if err := tr.AddBulk(ctx, seqOf(items), got.done); err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		err, ok := got.get(it.key)
		switch {
		case !ok:
			t.Errorf("%.40q not reported", it.key)
		case it.key == "present":
			if !errors.Is(err, tier.ErrNotStored) {
				t.Errorf("present: %v, want ErrNotStored", err)
			}
		case it.key == "too large":
			if !errors.Is(err, tier.ErrTooLarge) {
				t.Errorf("too large: %v, want ErrTooLarge", err)
			}
		case err != nil:
			t.Errorf("%.40q: %v", it.key, err)
		}
	}
	// Everything stored reads back through Get exactly as Add would have
	// stored it: value, expiry, hashed key.
	for _, it := range items {
		e, err := tr.Get(ctx, it.key)
		switch it.key {
		case "expired", "too large":
			if err == nil {
				t.Errorf("%s was stored", it.key)
			}
			continue
		case "present":
			if err != nil || string(e.Value) != "live traffic" {
				t.Errorf("present = %q, %v; the bulk add overwrote live data", e.Value, err)
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
	if ttl := metaTTL(t, mc.Addr, "bulk:00001"); ttl != "HD t3600" {
		t.Errorf("TTL sent: %q, want an hour", ttl)
	}
	if ttl := metaTTL(t, mc.Addr, "forever"); ttl != "HD t-1" {
		t.Errorf("TTL of an entry that never expires: %q", ttl)
	}

	// Safe to run again: the second run stores nothing.
	again := newOutcomes(t)
	if err := tr.AddBulk(ctx, seqOf(items), again.done); err != nil {
		t.Fatal(err)
	}
	if n := again.count(func(err error) bool { return errors.Is(err, tier.ErrNotStored) }); n != len(items)-2 {
		t.Errorf("second run: %d not stored, want %d", n, len(items)-2)
	}
	c := tr.Counters()
	if c["bulk_sent"] != 2*int64(len(items)-2) || c["bulk_batches"] < 2*2000/DefaultBulkBatch {
		t.Errorf("counters: bulk_sent=%d bulk_batches=%d", c["bulk_sent"], c["bulk_batches"])
	}
}

func TestAddBulkSpreadsOverNodes(t *testing.T) {
	t.Parallel()
	a, b := testenv.Memcached(t), testenv.Memcached(t)
	tr, err := New([]string{a.Addr, b.Addr})
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
		t.Fatalf("%d failures", n)
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
}

func TestAddBulkNodeDown(t *testing.T) {
	t.Parallel()
	tr, mc := newTestTier(t)
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
}

// Every entry AddBulk took is reported once, even when ctx ends halfway.
func TestAddBulkCancel(t *testing.T) {
	t.Parallel()
	tr, _ := newTestTier(t)
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
}

// fakeMeta answers meta-protocol adds as a script says: reply(i) is the
// line sent after command i of a batch, "" for none (success, quiet).
func fakeMeta(t *testing.T, reply func(i int) string) *fakeServer {
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
			case len(f) > 2 && f[0] == "ms":
				n, _ := strconv.Atoi(f[2])
				if _, err := r.Discard(n + 2); err != nil {
					return
				}
				if s := reply(i); s != "" {
					w.WriteString(s + "\r\n")
				}
				i++
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
		reply func(i int) string
		// want[i] is the outcome of command i: "" stored, "NS", "fail".
		want func(i int) string
	}{
		{
			name: "not stored by opaque",
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
			name: "server error between two tied replies",
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
			name: "client error breaks the connection",
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
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := fakeMeta(t, tc.reply)
			tr, err := New([]string{fs.addr})
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
	for _, w := range []struct{ conns, window, batch int }{{1, 1, 1}, {1, 1, 100}, {3, 2, 7}, {4, 4, 256}} {
		t.Run(fmt.Sprintf("%dx%dx%d", w.conns, w.window, w.batch), func(t *testing.T) {
			t.Parallel()
			tr, _ := newTestTier(t, WithBulkWindow(w.conns, w.window, w.batch))
			ctx := context.Background()
			var items []kv
			keys := make([]string, 0, 1000)
			for i := range 1000 {
				items = append(items, kv{fmt.Sprintf("win:%04d", i), tier.Entry{Value: []byte(strconv.Itoa(i))}})
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
}

func TestWithBulkWindowInvalid(t *testing.T) {
	t.Parallel()
	for _, w := range [][3]int{{0, 1, 128}, {65, 1, 128}, {2, 0, 128}, {2, 65, 128}, {2, 1, 0}, {2, 1, 4097}, {-1, -1, -1}} {
		tr, err := New([]string{"127.0.0.1:1"}, WithBulkWindow(w[0], w[1], w[2]))
		if !errors.Is(err, ErrInvalidOption) {
			if tr != nil {
				tr.Close()
			}
			t.Errorf("WithBulkWindow(%d, %d, %d): %v, want ErrInvalidOption", w[0], w[1], w[2], err)
		}
	}
}
