package boltdb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tiercache/tiercache/tier"
)

var roundTripCases = []struct {
	name  string
	key   string
	entry tier.Entry
}{
	{"plain", "42", value("hello")},
	{"empty key", "", value("the empty key is a key")},
	{"one byte key", "x", value("v")},
	{"10000 byte key", strings.Repeat("k", 10000), value("long key")},
	{"max key", strings.Repeat("m", maxKeyLen), value("longest key bbolt takes")},
	{"NUL in key", "a\x00b", value("nul")},
	{"CRLF in key", "get a\r\nb", value("crlf")},
	{"UTF-8 key", "clé-日本-🔑", value("utf8")},
	{"binary value", "bin", tier.Entry{Value: []byte{0, 1, 2, 0xff, '\r', '\n'}}},
	{"empty value", "empty", tier.Entry{Value: []byte{}}},
	{"negative", "neg", tier.Entry{Negative: true, Expires: time.UnixMilli(1_900_000_000_000)}},
	{"with expiry", "ttl", tier.Entry{Value: []byte("v"), Expires: time.UnixMilli(1_900_000_000_123)}},
	{"already expired", "old", tier.Entry{Value: []byte("v"), Expires: time.UnixMilli(1_000)}},
	{"large value", "big", tier.Entry{Value: []byte(strings.Repeat("v", 1<<20))}},
}

func checkRoundTrip(t *testing.T, s *Store, stage string) {
	t.Helper()
	for _, tc := range roundTripCases {
		got, err := s.Get(context.Background(), tc.key)
		if err != nil {
			t.Errorf("%s: %s: Get: %v", stage, tc.name, err)
			continue
		}
		if !sameEntry(got, tc.entry) {
			t.Errorf("%s: %s: Get = %+.40v, want %+.40v", stage, tc.name, got, tc.entry)
		}
		if !tc.entry.Negative && got.Value == nil {
			t.Errorf("%s: %s: empty value came back nil, indistinguishable from no value", stage, tc.name)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	s := openAt(t, path, held())
	for _, tc := range roundTripCases {
		mustSet(t, s, tc.key, tc.entry)
	}
	checkRoundTrip(t, s, "before flush")
	if n := s.Counters()["entries_written"]; n != 0 {
		t.Fatalf("entries_written = %d before Flush, want 0: the overlay test proves nothing", n)
	}
	mustFlush(t, s)
	if got, want := s.Counters()["entries_written"], int64(len(roundTripCases)); got != want {
		t.Fatalf("entries_written = %d after Flush, want %d", got, want)
	}
	checkRoundTrip(t, s, "after flush")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path)
	checkRoundTrip(t, s, "after reopen")
}

func TestCallerMutatesValue(t *testing.T) {
	t.Parallel()
	s := openTest(t, held())
	buf := []byte("original")
	mustSet(t, s, "k", tier.Entry{Value: buf})
	copy(buf, "XXXXXXXX")
	got, err := s.Get(context.Background(), "k")
	if err != nil || string(got.Value) != "original" {
		t.Fatalf("Get after caller changed its slice = %q, %v; want original", got.Value, err)
	}
	got.Value[0] = 'Y'
	again, _ := s.Get(context.Background(), "k")
	if string(again.Value) != "original" {
		t.Fatalf("changing a returned value changed the store: %q", again.Value)
	}
}

func TestMissAndTooLarge(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := context.Background()
	tooLong := strings.Repeat("x", maxKeyLen+1)
	for _, key := range []string{"absent", "", tooLong} {
		if _, err := s.Get(ctx, key); !errors.Is(err, tier.ErrMiss) {
			t.Errorf("Get(%.20q) = %v, want ErrMiss", key, err)
		}
	}
	if err := s.Set(ctx, tooLong, value("v")); !errors.Is(err, tier.ErrTooLarge) {
		t.Errorf("Set(key of %d bytes) = %v, want ErrTooLarge", len(tooLong), err)
	}
	if err := s.Delete(ctx, tooLong); err != nil {
		t.Errorf("Delete(too long key) = %v, want nil", err)
	}
	if err := s.Delete(ctx, "absent"); err != nil {
		t.Errorf("Delete(absent) = %v, want nil", err)
	}
}

func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t, held())
	mustSet(t, s, "k", value("v1"))
	mustFlush(t, s)

	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok := onDisk(t, s, "k"); !ok {
		t.Fatal("the delete reached the disk already; the test cannot see the overlay")
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("Get right after Delete = %v, want ErrMiss while the delete is queued", err)
	}
	if m, err := s.GetMulti(ctx, []string{"k"}); err != nil || len(m) != 0 {
		t.Fatalf("GetMulti right after Delete = %v, %v; want empty", m, err)
	}

	mustSet(t, s, "k", value("v2"))
	if got, err := s.Get(ctx, "k"); err != nil || string(got.Value) != "v2" {
		t.Fatalf("Get after Set = %q, %v; want v2", got.Value, err)
	}
	mustFlush(t, s)
	if e, ok := onDisk(t, s, "k"); !ok || string(e.Value) != "v2" {
		t.Fatalf("disk after Flush = %q, %v; want v2", e.Value, ok)
	}
	if n := s.Counters()["pending"]; n != 0 {
		t.Fatalf("pending = %d after Flush, want 0", n)
	}
}

// TestLastWriteWins runs random Sets and Deletes over a few keys, in
// small batches, from several goroutines that each own their keys, while
// the writer commits concurrently; the file must end as the last call
// left each key.
func TestLastWriteWins(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	s := openAt(t, path, WithBatchSize(3), WithFlushInterval(0))
	ctx := context.Background()
	const workers, keysPer, ops = 4, 5, 400
	want := make([]map[string]*tier.Entry, workers)
	var wg sync.WaitGroup
	for w := range workers {
		want[w] = make(map[string]*tier.Entry)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range ops {
				key := fmt.Sprintf("w%d-k%d", w, rng.IntN(keysPer))
				if rng.IntN(3) == 0 {
					if err := s.Delete(ctx, key); err != nil {
						t.Error(err)
					}
					want[w][key] = nil
					continue
				}
				e := value(fmt.Sprintf("%s-%d", key, i))
				if err := s.Set(ctx, key, e); err != nil {
					t.Error(err)
				}
				want[w][key] = &e
			}
		})
	}
	wg.Wait()
	check := func(stage string) {
		for w := range workers {
			for key, e := range want[w] {
				got, err := s.Get(ctx, key)
				switch {
				case e == nil && !errors.Is(err, tier.ErrMiss):
					t.Errorf("%s: %s: Get = %q, %v; want deleted", stage, key, got.Value, err)
				case e != nil && (err != nil || !sameEntry(got, *e)):
					t.Errorf("%s: %s: Get = %q, %v; want %q", stage, key, got.Value, err, e.Value)
				}
			}
		}
	}
	check("before flush")
	mustFlush(t, s)
	check("after flush")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path)
	check("after reopen")
}

func TestGetMulti(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t, held())
	for _, k := range []string{"disk", "overwritten", "deleted", ""} {
		mustSet(t, s, k, value("disk:"+k))
	}
	mustFlush(t, s)
	mustSet(t, s, "overwritten", value("pending"))
	mustSet(t, s, "new", value("pending new"))
	if err := s.Delete(ctx, "deleted"); err != nil {
		t.Fatal(err)
	}
	keys := []string{"disk", "overwritten", "deleted", "new", "missing", "", "disk", strings.Repeat("x", maxKeyLen+1)}
	before := s.db.Stats().TxN
	got, err := s.GetMulti(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.db.Stats().TxN - before; n != 1 {
		t.Errorf("GetMulti used %d read transactions, want 1", n)
	}
	want := map[string]string{"disk": "disk:disk", "overwritten": "pending", "new": "pending new", "": "disk:"}
	if len(got) != len(want) {
		t.Errorf("GetMulti returned %d keys, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if string(got[k].Value) != v {
			t.Errorf("GetMulti[%q] = %q, want %q", k, got[k].Value, v)
		}
	}

	before = s.db.Stats().TxN
	if m, err := s.GetMulti(ctx, []string{"new", "deleted"}); err != nil || len(m) != 1 {
		t.Errorf("GetMulti of pending keys = %v, %v", m, err)
	}
	if n := s.db.Stats().TxN - before; n != 0 {
		t.Errorf("GetMulti answered from the overlay alone still opened %d transactions", n)
	}
}

// putRaw stores bytes under key directly, as a damaged or foreign file
// would hold them.
func putRaw(t *testing.T, s *Store, key string, raw []byte) {
	t.Helper()
	err := s.update(func(tx *bolt.Tx) error {
		l, err := openLayout(tx)
		if err != nil {
			return err
		}
		if err := l.put(diskKey(key), raw); err != nil {
			return err
		}
		return l.save()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBadEnvelope stores a record whose checksum is right around bytes
// that are not an envelope: a bug, not damage, reported as such.
func TestBadEnvelope(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t)
	mustSet(t, s, "good", value("fine"))
	mustFlush(t, s)
	putRaw(t, s, "garbage", frameRecord([]byte("garbage"), []byte{0xde, 0xad}))

	if _, err := s.Get(ctx, "garbage"); !errors.Is(err, tier.ErrBadEnvelope) {
		t.Fatalf("Get(garbage) = %v, want ErrBadEnvelope", err)
	}
	m, err := s.GetMulti(ctx, []string{"good", "garbage"})
	if !errors.Is(err, tier.ErrBadEnvelope) || string(m["good"].Value) != "fine" || len(m) != 1 {
		t.Fatalf("GetMulti = %v, %v; want good found and ErrBadEnvelope", m, err)
	}
	var seen []string
	if err := s.Scan(ctx, func(k string, _ tier.Entry) error { seen = append(seen, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != "good" {
		t.Fatalf("Scan saw %q, want only good", seen)
	}
	if n, err := s.RunGC(ctx); err != nil || n != 1 {
		t.Fatalf("RunGC = %d, %v; want 1 garbage record deleted", n, err)
	}
	if _, err := s.Get(ctx, "garbage"); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("Get(garbage) after GC = %v, want ErrMiss", err)
	}
	if n := s.Counters()["bad_records"]; n < 3 {
		t.Errorf("bad_records = %d, want at least 3", n)
	}
}

func TestAdd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	s := openTest(t, held(), WithClock(clock))
	expired := tier.Entry{Value: []byte("expired"), Expires: clock.Now()}
	mustSet(t, s, "on disk", value("old"))
	mustSet(t, s, "expired on disk", expired)
	mustSet(t, s, "deleted", value("old"))
	mustFlush(t, s)
	putRaw(t, s, "garbage", frameRecord([]byte("garbage"), []byte("not an envelope")))
	putRaw(t, s, "damaged", []byte("fails its checksum"))
	mustSet(t, s, "pending", value("queued"))
	mustSet(t, s, "expired pending", expired)
	if err := s.Delete(ctx, "deleted"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, key string
		wantErr   error
		want      string
	}{
		{"absent key is stored", "absent", nil, "added"},
		{"entry on disk is kept", "on disk", nil, "old"},
		{"pending value is kept", "pending", tier.ErrNotStored, "queued"},
		{"pending delete counts as absent", "deleted", nil, "added"},
		{"expired entry on disk is replaced", "expired on disk", nil, "added"},
		{"expired pending value is replaced", "expired pending", nil, "added"},
		{"garbage record is replaced", "garbage", nil, "added"},
		{"damaged record is replaced", "damaged", nil, "added"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Add(ctx, tc.key, value("added")); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Add = %v, want %v", err, tc.wantErr)
			}
		})
	}
	mustFlush(t, s)
	for _, tc := range cases {
		if got, err := s.Get(ctx, tc.key); err != nil || string(got.Value) != tc.want {
			t.Errorf("%s: Get after Add and Flush = %q, %v; want %q", tc.name, got.Value, err, tc.want)
		}
	}
	if n := s.Counters()["adds_present"]; n != 1 {
		t.Errorf("adds_present = %d, want 1 (the entry on disk)", n)
	}
	for _, k := range []string{"absent", "deleted", "expired on disk", "expired pending", "garbage", "damaged"} {
		if e, ok := onDisk(t, s, k); !ok || string(e.Value) != "added" {
			t.Errorf("%s: disk holds %q, %v after Add; want added", k, e.Value, ok)
		}
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := tempPath(t)
	s := openAt(t, path, held())
	mustSet(t, s, "queued", value("written by Close"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	calls := map[string]func() error{
		"Get":      func() error { _, err := s.Get(ctx, "queued"); return err },
		"GetMulti": func() error { _, err := s.GetMulti(ctx, []string{"queued"}); return err },
		"Set":      func() error { return s.Set(ctx, "k", value("v")) },
		"Add":      func() error { return s.Add(ctx, "k", value("v")) },
		"Delete":   func() error { return s.Delete(ctx, "k") },
		"Scan":     func() error { return s.Scan(ctx, func(string, tier.Entry) error { return nil }) },
		"Flush":    func() error { return s.Flush(ctx) },
		"RunGC":    func() error { _, err := s.RunGC(ctx); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, tier.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if c := s.Counters(); c == nil {
		t.Error("Counters after Close returned nil")
	}
	s = openAt(t, path)
	if got, err := s.Get(ctx, "queued"); err != nil || string(got.Value) != "written by Close" {
		t.Fatalf("after reopen Get = %q, %v; Close did not flush the queue", got.Value, err)
	}
}

// TestNoGoroutineLeak is not parallel: it counts goroutines while no other
// test runs.
func TestNoGoroutineLeak(t *testing.T) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	for i := range 5 {
		s, err := Open(tempPath(t), WithGCInterval(time.Millisecond), WithFlushInterval(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for j := range 100 {
			_ = s.Set(ctx, fmt.Sprint(j), value("v"))
		}
		_ = s.Delete(ctx, "1")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

func TestCountersKeys(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	c := s.Counters()
	for _, k := range []string{"queue_depth", "batches_written", "entries_written", "gc_deleted", "gc_runs", "evicted", "dropped", "write_errors", "panics"} {
		if _, ok := c[k]; !ok {
			t.Errorf("Counters lacks %q", k)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a canceled context = %v", err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Errorf("Delete with a canceled context and room in the queue = %v, want nil: invalidations go through", err)
	}
}

func TestPanicsBecomeErrors(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	for name, run := range map[string]func(func(*bolt.Tx) error) error{"view": s.view, "update": s.update} {
		err := run(func(*bolt.Tx) error { panic("boom") })
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "boom") {
			t.Errorf("%s of a panicking function = %v, want ErrCorrupt naming the panic", name, err)
		}
	}
	if n := s.Counters()["panics"]; n != 2 {
		t.Errorf("panics = %d, want 2", n)
	}
	mustSet(t, s, "k", value("v")) // the store still works
	mustFlush(t, s)
}

// TestFileTruncatedUnderneath cuts the file while it is open: reads then
// touch mapped memory past the end of the file, which raises SIGBUS. The
// store must report ErrCorrupt, not crash.
func TestFileTruncatedUnderneath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := tempPath(t)
	s := openAt(t, path, WithNoSync(true))
	for i := range 1000 {
		mustSet(t, s, fmt.Sprintf("key-%06d", i), value(strings.Repeat("v", 200)))
	}
	mustFlush(t, s)
	if err := os.Truncate(path, 8192); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "key-000500"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get from a truncated file = %v, want ErrCorrupt", err)
	}
	if n := s.Counters()["panics"]; n == 0 {
		t.Error("the fault was not counted in panics")
	}
}

// TestAddsUnderCommitsAllLand adds distinct keys from many goroutines
// while the writer commits small batches as fast as it can, into a queue
// far smaller than the keys: every Add returns nil, waiting for room when
// it must, and every key is in the file afterwards. Nothing Add accepted
// vanishes, whatever commits under it.
func TestAddsUnderCommitsAllLand(t *testing.T) {
	t.Parallel()
	const workers, per = 8, 2000
	ctx := context.Background()
	s := openTest(t, WithFlushInterval(0), WithBatchSize(64), WithQueueSize(256), WithNoSync(true))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				if err := s.Add(ctx, fmt.Sprintf("w%d-%d", w, i), value("v")); err != nil {
					t.Errorf("Add: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	mustFlush(t, s)
	missing := 0
	for w := range workers {
		for i := range per {
			if _, ok := onDisk(t, s, fmt.Sprintf("w%d-%d", w, i)); !ok {
				missing++
			}
		}
	}
	if c := s.Counters(); missing > 0 || c["dropped"] != 0 {
		t.Errorf("%d of %d added keys missing from the file, dropped %d", missing, workers*per, c["dropped"])
	}
}

// AddBulk waits for room while its context lets it, reports every entry
// it took to done, and stops when the context ends.
func TestAddBulk(t *testing.T) {
	t.Parallel()
	s := openTest(t, WithQueueSize(3))
	entries := func(yield func(string, tier.Entry) bool) {
		for i := range 10 {
			if !yield(fmt.Sprint("k", i), value("v")) {
				return
			}
		}
	}
	// Stall the writer: it waits for bbolt's writer lock, held here.
	tx, err := s.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var order []string
	results := map[string]error{}
	record := func(k string, err error) { order = append(order, k); results[k] = err }
	err = s.AddBulk(ctx, entries, record)
	_ = tx.Rollback()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AddBulk into a stalled queue of 3 = %v, want DeadlineExceeded", err)
	}
	last := order[len(order)-1]
	if len(order) == 10 || !errors.Is(results[last], ErrQueueFull) {
		t.Fatalf("AddBulk took %v, the last with %v; want it stopped at one refused with ErrQueueFull", order, results[last])
	}
	for _, k := range order[:len(order)-1] {
		if results[k] != nil {
			t.Errorf("%s before the queue filled: %v", k, results[k])
		}
	}
	clear(results)
	if err := s.AddBulk(context.Background(), entries, func(k string, err error) { results[k] = err }); err != nil {
		t.Fatalf("AddBulk once the writer runs = %v", err)
	}
	for k, err := range results {
		if err != nil && !errors.Is(err, tier.ErrNotStored) {
			t.Errorf("%s: %v", k, err)
		}
	}
	mustFlush(t, s)
	for i := range 10 {
		if _, ok := onDisk(t, s, fmt.Sprint("k", i)); !ok {
			t.Errorf("k%d not in the file", i)
		}
	}
}
