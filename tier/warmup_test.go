package tier

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/clocktest"
)

// bulkTier is a memTier that adds in bulk and reports restarts, as the
// memcached tier does with restart detection on.
type bulkTier struct {
	*memTier
	restarts  chan Restart
	bulkCalls atomic.Int64
	// order records the keys AddBulk was given, in order.
	mu    sync.Mutex
	order []string
	// block, when set, makes AddBulk wait for ctx before its first entry.
	block bool
}

var (
	_ BulkAdder      = (*bulkTier)(nil)
	_ RestartWatcher = (*bulkTier)(nil)
)

func newBulkTier() *bulkTier {
	return &bulkTier{memTier: newMemTier("top"), restarts: make(chan Restart, 4)}
}

func (t *bulkTier) Restarts() <-chan Restart { return t.restarts }

func (t *bulkTier) AddBulk(ctx context.Context, entries iter.Seq2[string, Entry], done func(string, error)) error {
	t.bulkCalls.Add(1)
	if t.block {
		<-ctx.Done()
		return ctx.Err()
	}
	for k, e := range entries {
		t.mu.Lock()
		t.order = append(t.order, k)
		t.mu.Unlock()
		e.Value = slices.Clone(e.Value)
		done(k, t.Add(ctx, k, e))
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (t *bulkTier) sent() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.order)
}

// hotDisk is a durable tier that lists hot keys first and knows its size.
type hotDisk struct {
	*memTier
	hot []string
}

func (d *hotDisk) Len() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return int64(len(d.m))
}

func (d *hotDisk) ScanHot(ctx context.Context, fn func(string, Entry) error) error {
	for _, k := range d.hot {
		if e, ok := d.entry(k); ok {
			if err := fn(k, e); err != nil {
				return err
			}
		}
	}
	return d.Scan(ctx, func(k string, e Entry) error {
		if slices.Contains(d.hot, k) {
			return nil
		}
		return fn(k, e)
	})
}

type bulkChain struct {
	cache *Cache
	top   *bulkTier
	disk  *hotDisk
	clock *clocktest.Clock
}

func newBulkChain(t *testing.T, opts ...Option) *bulkChain {
	t.Helper()
	ch := &bulkChain{top: newBulkTier(), disk: &hotDisk{memTier: newMemTier("disk")}, clock: newFakeClock()}
	c, err := New(newMapLoader(nil), append([]Option{
		WithTier(ch.top, 10*time.Minute),
		WithTier(ch.disk, 24*time.Hour),
		WithClock(ch.clock),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ch.cache = c
	t.Cleanup(func() { c.Close() })
	return ch
}

func TestWarmupBulk(t *testing.T) {
	t.Parallel()
	ch := newBulkChain(t)
	now := ch.clock.Now()
	ch.disk.m["live"] = Entry{Value: []byte("L"), Expires: now.Add(time.Minute)}
	ch.disk.m["long"] = Entry{Value: []byte("G"), Expires: now.Add(time.Hour)}
	ch.disk.m["forever"] = Entry{Value: []byte("F")}
	ch.disk.m["expired"] = Entry{Value: []byte("E"), Expires: now.Add(-time.Second)}
	ch.disk.m["negative"] = Entry{Negative: true, Expires: now.Add(time.Minute)}
	ch.disk.m["newer"] = Entry{Value: []byte("old"), Expires: now.Add(time.Hour)}
	ch.top.m["newer"] = Entry{Value: []byte("new"), Expires: now.Add(time.Minute)}
	ch.disk.hot = []string{"newer", "long"}

	st, err := ch.cache.Warmup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ch.top.bulkCalls.Load() != 1 {
		t.Errorf("AddBulk called %d times, want once", ch.top.bulkCalls.Load())
	}
	if got, want := ch.top.sent(), []string{"newer", "long", "forever", "live"}; !slices.Equal(got, want) {
		t.Errorf("sent %q, want the hot keys first then the rest: %q", got, want)
	}
	if st.Sent != 4 || st.Written != 3 || st.Present != 1 || st.Skipped != 2 || st.Scanned != 6 {
		t.Errorf("warmup = %+v", st)
	}
	if st.Last.Total != 6 || !st.Last.Done || st.Last.Fraction() != 1 {
		t.Errorf("progress = %+v", st.Last)
	}
	for key, want := range map[string]time.Time{
		"live":    now.Add(time.Minute),
		"long":    now.Add(10 * time.Minute), // capped at the top tier's TTL
		"forever": now.Add(10 * time.Minute),
	} {
		if e, ok := ch.top.entry(key); !ok || !e.Expires.Equal(want) {
			t.Errorf("%s: %+v, %v; want expiry %v", key, e, ok, want)
		}
	}
	if e, _ := ch.top.entry("newer"); string(e.Value) != "new" {
		t.Errorf("warmup overwrote newer data: %q", e.Value)
	}
	if ts := ch.cache.Stats().Tiers[0]; ts.Backfills != 3 {
		t.Errorf("top backfills = %d, want 3", ts.Backfills)
	}
	again, err := ch.cache.Warmup(context.Background())
	if err != nil || again.Written != 0 || again.Present != 4 {
		t.Errorf("second warmup = %+v, %v; want nothing written, 4 present", again, err)
	}
}

// An invalidation that lands while an entry is on its way up wins: the
// entry is taken back out of the top tier.
func TestWarmupBulkInvalidationWins(t *testing.T) {
	t.Parallel()
	ch := newBulkChain(t)
	for _, k := range []string{"a", "b", "c"} {
		ch.disk.m[k] = Entry{Value: []byte("old " + k)}
	}
	ch.top.beforeAdd = func(key string) {
		if key == "b" {
			// Delete bumps b's generation, then deletes it everywhere,
			// before the warmup's add lands.
			if err := ch.cache.Delete(context.Background(), "b"); err != nil {
				t.Error(err)
			}
		}
	}
	st, err := ch.cache.Warmup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ch.top.entry("b"); ok {
		t.Error("b is in the top tier after a Delete that raced with the warmup")
	}
	if st.Written != 2 || st.Skipped != 1 {
		t.Errorf("warmup = %+v, want 2 written and b skipped", st)
	}
}

func TestWarmupProgressAndRate(t *testing.T) {
	t.Parallel()
	ch := newBulkChain(t)
	const n = 200
	for i := range n {
		ch.disk.m[fmt.Sprintf("k%03d", i)] = Entry{Value: []byte("v")}
	}
	var (
		mu    sync.Mutex
		calls []WarmupProgress
	)
	start := time.Now()
	st, err := ch.cache.Warmup(context.Background(),
		WithWarmupRate(1000),
		WithWarmupProgress(10*time.Millisecond, func(p WarmupProgress) {
			mu.Lock()
			calls = append(calls, p)
			mu.Unlock()
			panic("a broken progress bar must not break the warmup")
		}))
	if err != nil || st.Written != n {
		t.Fatalf("warmup = %+v, %v", st, err)
	}
	// A lower bound only: pacing can make a warmup slower, never faster.
	if elapsed := time.Since(start); elapsed < 150*time.Millisecond {
		t.Errorf("%d entries at 1000/s took %v", n, elapsed)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) < 2 {
		t.Fatalf("progress called %d times, want periodic calls and a last one", len(calls))
	}
	last := calls[len(calls)-1]
	if !last.Done || last.Written != n || last.Total != n || last.Rate <= 0 {
		t.Errorf("last progress = %+v", last)
	}
	for _, p := range calls[:len(calls)-1] {
		if p.Done || p.Sent > n || p.Scanned > n {
			t.Errorf("progress during the run = %+v", p)
		}
	}
	if got := ch.cache.Stats().Warmup.Panics; got != int64(len(calls)) {
		t.Errorf("panics counted = %d, want %d", got, len(calls))
	}
}

// TestPacerBurst checks that the burst passes without waiting and that the
// rate applies right after it: with a context already cancelled, any wait
// the pacer decides on returns the context's error instead of sleeping.
func TestPacerBurst(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name        string
		rate, burst int
		free        int // waits that return at once
	}{
		{"no rate, no burst", 0, 0, 1000},
		{"no rate, a burst", 0, 10, 1000},
		{"rate, no burst", 1, 0, 0},
		{"rate and burst", 1, 100, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPacer(float64(tc.rate), int64(tc.burst))
			for i := range 1000 {
				err := p.wait(ctx)
				if i < tc.free && err != nil {
					t.Fatalf("wait %d = %v, want no wait", i, err)
				}
				if i >= tc.free {
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("wait %d = %v, want a wait, cut short by the context", i, err)
					}
					return
				}
			}
		})
	}
}

func TestWarmupOptionErrors(t *testing.T) {
	t.Parallel()
	ch := newBulkChain(t)
	for _, opt := range []WarmupOption{
		WithWarmupRate(-1),
		WithWarmupBurst(-1),
		WithWarmupProgress(0, func(WarmupProgress) {}),
		WithWarmupProgress(time.Second, nil),
	} {
		if _, err := ch.cache.Warmup(context.Background(), opt); err == nil {
			t.Error("invalid warmup option accepted")
		}
	}
}

func TestAutoWarmup(t *testing.T) {
	t.Parallel()
	ch := newBulkChain(t, WithAutoWarmup())
	for _, k := range []string{"a1", "a2", "b1", "b2"} {
		ch.disk.m[k] = Entry{Value: []byte(k)}
	}
	ch.top.restarts <- Restart{Node: "node-a", Reason: "restarted", Owns: func(key string) bool { return strings.HasPrefix(key, "a") }}
	waitFor(t, func() bool {
		w := ch.cache.Stats().Warmup
		return w.AutoRuns == 1 && w.Last.Done
	})
	w := ch.cache.Stats().Warmup
	if w.Restarts != 1 || w.Written != 2 || w.Scanned != 4 || w.Last.Trigger != "node-a restarted" {
		t.Errorf("warmup stats = %+v", w)
	}
	for _, k := range []string{"a1", "a2"} {
		if _, ok := ch.top.entry(k); !ok {
			t.Errorf("%s, on the restarted node, was not warmed", k)
		}
	}
	for _, k := range []string{"b1", "b2"} {
		if _, ok := ch.top.entry(k); ok {
			t.Errorf("%s, on another node, was warmed", k)
		}
	}

	// A restart that holds every key (one node), with a panic in the way
	// first: the watcher survives it.
	ch.top.restarts <- Restart{Node: "node-a", Reason: "flushed", Owns: func(string) bool { panic("boom") }}
	waitFor(t, func() bool { return ch.cache.Stats().Warmup.Panics == 1 })
	if w := ch.cache.Stats().Warmup; !w.Last.Done || w.Last.Err == nil || w.Running {
		t.Errorf("after a panic: %+v, want the run ended with an error", w)
	}
	ch.top.restarts <- Restart{Node: "node-a", Reason: "flushed"}
	waitFor(t, func() bool {
		w := ch.cache.Stats().Warmup
		return w.AutoRuns == 3 && w.Last.Done
	})
	if _, ok := ch.top.entry("b1"); !ok {
		t.Error("a restart with nil Owns did not warm every key")
	}
}

func TestAutoWarmupNeeds(t *testing.T) {
	t.Parallel()
	src := newMapLoader(nil)
	disk := newMemTier("disk")
	silent := newBulkTier()
	silent.restarts = nil
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"top reports no restarts", []Option{WithTier(newMemTier("top"), time.Minute), WithTier(disk, time.Hour)}},
		{"top does not watch", []Option{WithTier(silent, time.Minute), WithTier(disk, time.Hour)}},
		{"no durable tier", []Option{WithTier(newBulkTier(), time.Minute)}},
		{"nothing to scan", []Option{WithTier(newBulkTier(), time.Minute), WithTier(struct{ Tier }{disk}, time.Hour)}},
	} {
		if c, err := New(src, append(tc.opts, WithAutoWarmup())...); err == nil {
			c.Close()
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
	if _, err := New(src, WithAutoWarmup(WithWarmupRate(-5))); err == nil {
		t.Error("WithAutoWarmup with a bad rate: no error")
	}
}

// Close cancels a running automatic warmup and stops the watcher, leaving
// no goroutine behind.
func TestCloseStopsAutoWarmup(t *testing.T) {
	before := runtime.NumGoroutine()
	top := newBulkTier()
	top.block = true
	disk := newMemTier("disk")
	disk.m["k"] = Entry{Value: []byte("v")}
	c, err := New(newMapLoader(nil), WithTier(top, time.Minute), WithTier(disk, time.Hour),
		WithAutoWarmup(WithWarmupProgress(time.Millisecond, func(WarmupProgress) {})))
	if err != nil {
		t.Fatal(err)
	}
	top.restarts <- Restart{Node: "n", Reason: "restarted"}
	waitFor(t, func() bool { return top.bulkCalls.Load() == 1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if w := c.Stats().Warmup; w.Running || !w.Last.Done || !errors.Is(w.Last.Err, context.Canceled) {
		t.Errorf("after Close: %+v", w)
	}
	if _, err := c.Warmup(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Warmup after Close: %v", err)
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
}

// A manual warmup stops when the Cache closes.
func TestCloseCancelsWarmup(t *testing.T) {
	t.Parallel()
	ch := newBulkChain(t)
	ch.top.block = true
	ch.disk.m["k"] = Entry{Value: []byte("v")}
	done := make(chan error, 1)
	go func() {
		_, err := ch.cache.Warmup(context.Background())
		done <- err
	}()
	waitFor(t, func() bool { return ch.top.bulkCalls.Load() == 1 })
	ch.cache.Close()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Warmup during Close returned %v", err)
	}
}
