package boltdb

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/tiercache/tiercache/tier"
)

// hotKeys lists the keys ScanHot yields, in order.
func hotKeys(t *testing.T, s *Store) []string {
	t.Helper()
	var keys []string
	if err := s.ScanHot(context.Background(), func(k string, _ tier.Entry) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// flushTouches makes the writer commit the touches waiting, and waits
// until it has.
func flushTouches(t *testing.T, s *Store) {
	t.Helper()
	s.q.mu.Lock()
	s.q.hurry()
	s.q.mu.Unlock()
	waitFor(t, "touches taken", func() bool { return s.q.touchDepth() == 0 })
	// A write queued now commits with the touches or after them: once it
	// is flushed, so are they. A delete of a key nobody has adds nothing.
	if err := s.Delete(context.Background(), "\x00flush touches"); err != nil {
		t.Fatal(err)
	}
	mustFlush(t, s)
}

func TestScanHotOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	s := openTest(t, WithClock(clock))
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		mustSet(t, s, k, value(k))
		mustFlush(t, s) // one batch, one use record, per key
	}
	if got, want := hotKeys(t, s), []string{"e", "d", "c", "b", "a"}; !slices.Equal(got, want) {
		t.Fatalf("after writes: %q, want the newest write first %q", got, want)
	}

	// Reads that find a key in the file count as uses; a second read in
	// the same period is not logged again.
	for _, k := range []string{"b", "b", "a"} {
		if _, err := s.Get(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	flushTouches(t, s)
	if got := s.Counters()["touches_written"]; got != 2 {
		t.Errorf("touches_written = %d, want 2", got)
	}
	got := hotKeys(t, s)
	if !slices.Equal(got[2:], []string{"e", "d", "c"}) || !slices.Contains(got[:2], "a") || !slices.Contains(got[:2], "b") {
		t.Fatalf("after reading b and a: %q, want a and b first, then e d c", got)
	}

	// Queued writes come first; a queued delete hides the key.
	clock.Advance(touchPeriod)
	if _, err := s.GetMulti(ctx, []string{"c"}); err != nil {
		t.Fatal(err)
	}
	flushTouches(t, s)
	mustSet(t, s, "z", value("z"))
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	got = hotKeys(t, s)
	if want := []string{"z", "c", "b", "e", "d"}; !slices.Equal(got, want) {
		t.Fatalf("with queued writes: %q, want %q", got, want)
	}
}

// TestScanHotFollowsTheLogForAQuarter checks that ScanHot stops following
// the log once it has listed a quarter of the file, and lists the rest in
// key order, each entry once.
func TestScanHotFollowsTheLogForAQuarter(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	s.scanChunk = 5 // one use record of 10 keys per chunk
	for batch := range 10 {
		for i := range 10 {
			k := fmt.Sprintf("k%02d", 10*batch+i)
			mustSet(t, s, k, value(k))
		}
		mustFlush(t, s)
	}
	var want []string
	for i := 99; i >= 70; i-- { // three records: 30 keys, past a quarter of 100
		want = append(want, fmt.Sprintf("k%02d", i))
	}
	for i := range 70 {
		want = append(want, fmt.Sprintf("k%02d", i))
	}
	if got := hotKeys(t, s); !slices.Equal(got, want) {
		t.Fatalf("ScanHot listed %q\nwant %q", got, want)
	}
}

// ScanHot yields every entry exactly once, whatever the log holds: keys
// used many times, keys deleted since, keys the log has forgotten.
func TestScanHotVisitsEveryEntryOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"log bigger than the file", nil},
		{"log of 10 uses", []Option{WithRecencyLog(10)}},
		{"log off", []Option{WithRecencyLog(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			s := openTest(t, append(tc.opts, WithClock(clock))...)
			s.scanChunk = 7
			for round := range 4 {
				for i := range 50 {
					if (i+round)%3 == 0 {
						mustSet(t, s, fmt.Sprintf("k%02d", i), value(fmt.Sprint(round)))
					}
				}
				mustFlush(t, s)
				for i := range 50 {
					if i%7 == round {
						_, _ = s.Get(ctx, fmt.Sprintf("k%02d", i))
					}
				}
				clock.Advance(touchPeriod)
				flushTouches(t, s)
			}
			for i := range 10 {
				if err := s.Delete(ctx, fmt.Sprintf("k%02d", 3*i)); err != nil {
					t.Fatal(err)
				}
			}
			mustFlush(t, s)
			got := hotKeys(t, s)
			want := keysOf(t, s)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("ScanHot yielded %q, Scan %q", got, want)
			}
			var logged int64
			if err := s.db.View(func(tx *bolt.Tx) error {
				logged = int64(readUint64(tx.Bucket(bucketMeta), metaUsedKeys))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if limit := s.opts.recencyLog; limit > 0 && limit < 50 && logged > int64(limit)+50 {
				t.Errorf("the log holds %d uses, its limit is %d (plus one batch)", logged, limit)
			}
		})
	}
}

func TestTouchesNeverBlockReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t, WithQueueSize(2), held())
	for _, k := range []string{"a", "b", "c", "d"} {
		mustSet(t, s, k, value(k))
		mustFlush(t, s)
	}
	before := s.db.Stats().TxN
	for _, k := range []string{"a", "b", "c", "d"} {
		if _, err := s.Get(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	c := s.Counters()
	if c["touches_queued"] != 2 || c["touches_dropped"] != 2 {
		t.Errorf("touches queued=%d dropped=%d, want 2 and 2 (queue of 2)", c["touches_queued"], c["touches_dropped"])
	}
	if txs := s.db.Stats().TxN - before; txs != 4 {
		t.Errorf("4 Gets opened %d read transactions", txs)
	}
}

func TestReadOnlyStoreDoesNotTouch(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	s := openAt(t, path)
	mustSet(t, s, "k", value("v"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro := openAt(t, path, WithReadOnly())
	if _, err := ro.Get(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	if n := ro.Counters()["touches_queued"]; n != 0 {
		t.Errorf("a read-only store queued %d touches", n)
	}
	if got := hotKeys(t, ro); !slices.Equal(got, []string{"k"}) {
		t.Errorf("ScanHot on a read-only store: %q", got)
	}
	if ro.Len() != 1 {
		t.Errorf("Len = %d, want 1", ro.Len())
	}
}

func TestScanHotStops(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	for i := range 10 {
		mustSet(t, s, fmt.Sprint(i), value("v"))
	}
	mustFlush(t, s)
	stop := fmt.Errorf("enough")
	n := 0
	err := s.ScanHot(context.Background(), func(string, tier.Entry) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Errorf("ScanHot = %v after %d entries, want fn's error after 3", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.ScanHot(ctx, func(string, tier.Entry) error { return nil }); err != context.Canceled {
		t.Errorf("ScanHot on a cancelled context: %v", err)
	}
}

func FuzzLogKeys(f *testing.F) {
	f.Add(appendLogKey(appendLogKey([]byte{2}, "a"), "bc"))
	f.Add([]byte{})
	f.Add([]byte{1, 200})
	f.Fuzz(func(t *testing.T, record []byte) {
		var keys []string
		if logKeys(record, func(k []byte) { keys = append(keys, string(k)) }) != nil {
			return
		}
		again := []byte{}
		for _, k := range keys {
			again = appendLogKey(again, k)
		}
		var round []string
		rebuilt := append(binary.AppendUvarint(nil, uint64(len(keys))), again...)
		if err := logKeys(rebuilt, func(k []byte) { round = append(round, string(k)) }); err != nil || !slices.Equal(round, keys) {
			t.Fatalf("re-encoded %q: %q, %v", keys, round, err)
		}
	})
}
