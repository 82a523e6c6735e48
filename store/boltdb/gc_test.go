package boltdb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
)

func TestRunGC(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	now := clock.Now()
	entries := map[string]tier.Entry{
		"long expired":   {Value: []byte("v"), Expires: now.Add(-time.Hour)},
		"expires now":    {Value: []byte("v"), Expires: now},
		"just expired":   {Value: []byte("v"), Expires: now.Add(-30 * time.Second)},
		"negative, gone": {Negative: true, Expires: now.Add(-time.Hour)},
		"fresh":          {Value: []byte("v"), Expires: now.Add(time.Second)},
		"never expires":  {Value: []byte("v")},
		"negative, live": {Negative: true, Expires: now.Add(time.Minute)},
	}
	cases := []struct {
		name  string
		grace time.Duration
		kept  []string
	}{
		{"no grace", 0, []string{"fresh", "negative, live", "never expires"}},
		{"one minute grace", time.Minute, []string{"expires now", "fresh", "just expired", "negative, live", "never expires"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := openTest(t, WithClock(clock), WithGCGrace(tc.grace))
			for k, e := range entries {
				mustSet(t, s, k, e)
			}
			mustFlush(t, s)
			n, err := s.RunGC(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if want := len(entries) - len(tc.kept); n != want {
				t.Errorf("RunGC deleted %d, want %d", n, want)
			}
			var kept []string
			if err := s.Scan(context.Background(), func(k string, _ tier.Entry) error { kept = append(kept, k); return nil }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(kept, tc.kept) {
				t.Errorf("kept %q, want %q", kept, tc.kept)
			}
			if c := s.Counters(); c["entries"] != int64(len(tc.kept)) || c["gc_deleted"] != int64(n) || c["gc_runs"] != 1 {
				t.Errorf("counters entries=%d gc_deleted=%d gc_runs=%d", c["entries"], c["gc_deleted"], c["gc_runs"])
			}
		})
	}
}

func TestGCSmallTransactions(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := openTest(t, WithClock(clock), WithGCBatch(3))
	for i := range 25 {
		e := value("v")
		if i%5 != 0 { // 20 expired, 5 live, interleaved
			e.Expires = clock.Now().Add(-time.Second)
		}
		mustSet(t, s, fmt.Sprintf("k%02d", i), e)
	}
	mustFlush(t, s)
	n, err := s.RunGC(context.Background())
	if err != nil || n != 20 {
		t.Fatalf("RunGC = %d, %v; want 20", n, err)
	}
	if got, want := s.Counters()["gc_batches"], int64(7); got != want {
		t.Errorf("gc_batches = %d, want %d (20 deletions, 3 per transaction)", got, want)
	}
}

func TestGCLeavesPendingWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	s := openTest(t, WithClock(clock), held())
	expired := tier.Entry{Value: []byte("old"), Expires: clock.Now().Add(-time.Hour)}
	mustSet(t, s, "rewritten", expired)
	mustSet(t, s, "deleted", expired)
	mustFlush(t, s)
	mustSet(t, s, "rewritten", value("new"))
	if err := s.Delete(ctx, "deleted"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.RunGC(ctx); err != nil || n != 0 {
		t.Fatalf("RunGC = %d, %v; want 0: both keys have queued writes", n, err)
	}
	mustFlush(t, s)
	if got, err := s.Get(ctx, "rewritten"); err != nil || string(got.Value) != "new" {
		t.Fatalf("Get(rewritten) = %q, %v", got.Value, err)
	}
	if _, err := s.Get(ctx, "deleted"); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("Get(deleted) = %v", err)
	}
}

func TestBackgroundGC(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	path := tempPath(t)
	s, err := Open(path, WithClock(clock), WithGCInterval(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 10 {
		mustSet(t, s, fmt.Sprint(i), tier.Entry{Value: []byte("v"), Expires: clock.Now().Add(time.Duration(i+1) * time.Minute)})
	}
	mustFlush(t, s)
	waitFor(t, "a GC pass", func() bool { return s.Counters()["gc_runs"] > 0 })
	if n := s.Counters()["gc_deleted"]; n != 0 {
		t.Fatalf("gc_deleted = %d before anything expired", n)
	}
	clock.Advance(5 * time.Minute)
	waitFor(t, "the GC to delete 5 entries", func() bool { return s.Counters()["gc_deleted"] == 5 })
	if n := s.Counters()["entries"]; n != 5 {
		t.Fatalf("entries = %d, want 5", n)
	}
}

func keysOf(t *testing.T, s *Store) []string {
	t.Helper()
	var keys []string
	if err := s.Scan(context.Background(), func(k string, _ tier.Entry) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestSizeCap(t *testing.T) {
	t.Parallel()
	recordBytes := int64(len(diskKey("k0")) + recordHeader + tier.EnvelopeOverhead + len("v"))
	cases := []struct {
		name string
		opt  Option
	}{
		{"max entries", WithMaxEntries(5)},
		{"max bytes", WithMaxBytes(5*recordBytes + recordBytes/2)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := openTest(t, tc.opt)
			for i := range 10 {
				mustSet(t, s, fmt.Sprint("k", i), value("v"))
				mustFlush(t, s) // one batch per key: a defined write order
			}
			if got, want := keysOf(t, s), []string{"k5", "k6", "k7", "k8", "k9"}; !slices.Equal(got, want) {
				t.Fatalf("kept %q, want the newest %q", got, want)
			}
			mustSet(t, s, "k5", value("v")) // rewritten: now the newest
			mustFlush(t, s)
			mustSet(t, s, "k10", value("v"))
			mustFlush(t, s)
			if got, want := keysOf(t, s), []string{"k10", "k5", "k7", "k8", "k9"}; !slices.Equal(got, want) {
				t.Fatalf("kept %q, want %q: k6 is the oldest write", got, want)
			}
			c := s.Counters()
			if c["evicted"] != 6 || c["entries"] != 5 {
				t.Fatalf("evicted=%d entries=%d, want 6 and 5", c["evicted"], c["entries"])
			}
		})
	}
}

func TestSizeCapLowered(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	s := openAt(t, path)
	for i := range 20 {
		mustSet(t, s, fmt.Sprintf("k%02d", i), value("v"))
		mustFlush(t, s)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, WithMaxEntries(5), WithGCBatch(4))
	if _, err := s.RunGC(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := keysOf(t, s), []string{"k15", "k16", "k17", "k18", "k19"}; !slices.Equal(got, want) {
		t.Fatalf("kept %q, want %q", got, want)
	}
	if c := s.Counters(); c["evicted"] != 15 || c["entries"] != 5 {
		t.Fatalf("evicted=%d entries=%d, want 15 and 5", c["evicted"], c["entries"])
	}
}

// TestTotals checks the running totals against a count of the file after
// a mix of puts, overwrites, deletes, GC and eviction.
func TestTotals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	s := openTest(t, WithClock(clock), WithMaxEntries(50))
	for i := range 80 {
		e := value(fmt.Sprintf("value %d", i*i))
		if i%3 == 0 {
			e.Expires = clock.Now()
		}
		mustSet(t, s, fmt.Sprint(i%60), e)
		if i%7 == 0 {
			_ = s.Delete(ctx, fmt.Sprint(i/2))
		}
	}
	mustFlush(t, s)
	if _, err := s.RunGC(ctx); err != nil {
		t.Fatal(err)
	}
	var n, size int64
	err := s.Scan(ctx, func(k string, e tier.Entry) error {
		n++
		size += int64(len(diskKey(k)) + len(encodeRecord(k, e)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Counters(); c["entries"] != n || c["bytes"] != size {
		t.Fatalf("totals entries=%d bytes=%d; the file holds %d entries of %d bytes", c["entries"], c["bytes"], n, size)
	}
}
