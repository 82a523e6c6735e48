package tier

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/clocktest"
)

// leaseWorld is a shared top tier with leases and a shared source, over
// which each proc is a process with a durable tier of its own.
type leaseWorld struct {
	top   *leaseTier
	src   *mapLoader
	clock *clocktest.Clock
}

type proc struct {
	cache *Cache
	disk  *memTier
}

func newLeaseWorld(rows map[string]string) *leaseWorld {
	clock := newFakeClock()
	return &leaseWorld{top: newLeaseTier(clock), src: newMapLoader(rows), clock: clock}
}

// proc starts a process: WithLeases (with leaseOpts) over the world's top
// tier. Waiting for a lease sleeps for real and the clock stands still,
// unless advance is set: then each pause moves the clock instead.
func (w *leaseWorld) proc(t *testing.T, advance bool, leaseOpts []LeaseOption, opts ...Option) *proc {
	t.Helper()
	p := &proc{disk: newMemTier("disk")}
	base := []Option{
		WithTier(w.top, 10*time.Minute),
		WithTier(p.disk, 24*time.Hour),
		WithNegativeTTL(30 * time.Second),
		WithClock(w.clock),
		WithLeases(leaseOpts...),
	}
	c, err := New(w.src, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if advance {
		c.sleep = func(ctx context.Context, d time.Duration) error {
			w.clock.Advance(d)
			return ctx.Err()
		}
	}
	p.cache = c
	t.Cleanup(func() { c.Close() })
	return p
}

func mustGetValue(t *testing.T, c *Cache, key, want string) {
	t.Helper()
	v, err := c.Get(context.Background(), key)
	if err != nil || string(v) != want {
		t.Fatalf("Get(%q) = %q, %v; want %q", key, v, err, want)
	}
	filled(t, c)
}

// Two processes, many callers each, one cold key: one load in all.
func TestLeaseOneLoadAcrossProcesses(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"k": "v"})
	release := make(chan struct{})
	w.src.hook = func(ctx context.Context, keys []string) error {
		<-release
		return nil
	}
	a, b := w.proc(t, false, nil), w.proc(t, false, nil)
	var wg sync.WaitGroup
	for range 20 {
		for _, p := range []*proc{a, b} {
			wg.Go(func() { mustGetValue(t, p.cache, "k", "v") })
		}
	}
	waitFor(t, func() bool { return a.cache.Stats().Leases.Waits+b.cache.Stats().Leases.Waits == 1 })
	close(release)
	wg.Wait()
	if n := w.src.calls.Load(); n != 1 {
		t.Fatalf("%d loads, want 1", n)
	}
	sa, sb := a.cache.Stats().Leases, b.cache.Stats().Leases
	if sa.Won+sb.Won != 1 || sa.Fills+sb.Fills != 1 || sa.WaitHits+sb.WaitHits != 1 || sa.Timeouts+sb.Timeouts != 0 {
		t.Errorf("lease stats %+v and %+v; want one win, one fill, one wait answered by it", sa, sb)
	}
}

// The stale set: a load reads v1 and pauses before its fill; the row is
// updated and another process deletes the key; the fill is refused, and
// the durable copy the load left is never served.
func TestLeaseInvalidationRefusesLateFill(t *testing.T) {
	t.Parallel()
	for _, op := range []string{"Delete", "Set"} {
		t.Run(op, func(t *testing.T) {
			w := newLeaseWorld(map[string]string{"k": "v1"})
			a, b := w.proc(t, false, nil), w.proc(t, false, nil)
			paused, resume := make(chan struct{}), make(chan struct{})
			var once sync.Once
			w.top.beforeFill = func(string) { once.Do(func() { close(paused); <-resume }) }
			got := make(chan string)
			go func() {
				v, _ := a.cache.Get(context.Background(), "k")
				got <- string(v)
			}()
			<-paused // a holds v1, loaded under its lease
			w.src.put("k", "v2")
			var err error
			if op == "Delete" {
				err = b.cache.Delete(context.Background(), "k")
			} else {
				err = b.cache.Set(context.Background(), "k", []byte("v2"))
			}
			if err != nil {
				t.Fatal(err)
			}
			close(resume)
			if v := <-got; v != "v1" {
				t.Fatalf("the racing Get = %q, want v1 (it began before the %s)", v, op)
			}
			filled(t, a.cache)
			if n := a.cache.Stats().Leases.Refused; n != 1 {
				t.Fatalf("%d fills refused, want 1", n)
			}
			if e, ok := a.disk.entry("k"); !ok || string(e.Value) != "v1" {
				t.Fatalf("a's durable tier = %+v, %v; the test wants the late v1 there", e, ok)
			}
			// From now on nobody sees v1: not from the top tier, not from
			// a's durable tier.
			for _, p := range []*proc{a, b, a} {
				mustGetValue(t, p.cache, "k", "v2")
			}
			w.clock.Advance(11 * time.Minute) // past the top tier's TTL, within the durable one's
			for _, p := range []*proc{a, b} {
				mustGetValue(t, p.cache, "k", "v2")
			}
			if e, _ := a.disk.entry("k"); string(e.Value) == "v1" {
				t.Fatalf("a's durable tier still holds v1")
			}
		})
	}
}

// A durable copy older than the marker is dropped; one loaded after it is
// served, without going to the source.
func TestLeaseDurableCopyAgainstMarker(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"old": "v1", "new": "v1"})
	a, b := w.proc(t, false, nil), w.proc(t, false, nil)
	mustGetValue(t, a.cache, "old", "v1") // a's durable copy, loaded before the Delete
	w.clock.Advance(time.Minute)
	for _, k := range []string{"old", "new"} {
		w.src.put(k, "v2")
		if err := b.cache.Delete(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	w.clock.Advance(2 * DefaultClockSkew)
	mustGetValue(t, a.cache, "new", "v2") // loaded after the Delete
	w.clock.Advance(11 * time.Minute)     // the top tier's copies expire
	calls := w.src.calls.Load()
	mustGetValue(t, a.cache, "new", "v2")
	if n := w.src.calls.Load() - calls; n != 0 {
		t.Errorf("a durable copy newer than the marker: %d loads, want 0", n)
	}
	mustGetValue(t, a.cache, "old", "v2")
	if n := w.src.calls.Load() - calls; n != 1 {
		t.Errorf("a durable copy older than the marker: %d loads, want 1", n)
	}
	if st := a.cache.Stats().Leases; st.Rejected != 1 {
		t.Errorf("%d durable copies rejected, want 1", st.Rejected)
	}
}

// A warmup cannot push a durable copy older than a marker into the top
// tier: the marker occupies the key.
func TestLeaseWarmupKeepsMarker(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"k": "v1"})
	a, b := w.proc(t, false, nil), w.proc(t, false, nil)
	mustGetValue(t, a.cache, "k", "v1")
	w.src.put("k", "v2")
	if err := b.cache.Delete(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	st, err := a.cache.Warmup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Written != 0 || st.Present != 1 {
		t.Fatalf("warmup %+v, want the key present (the marker), nothing written", st)
	}
	if it, _ := w.top.item("k"); it.entry != nil {
		t.Fatalf("top tier holds %q after the warmup", it.entry.Value)
	}
	mustGetValue(t, b.cache, "k", "v2")
}

// A lease holder that dies: its lease runs out and a waiter takes over.
func TestLeaseHolderDies(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"k": "v"})
	dead, err := w.top.Lease(context.Background(), []string{"k"}, LeaseRequest{TTL: DefaultLeaseTTL, Now: w.clock.Now()})
	if err != nil || dead["k"].State != LeaseWon {
		t.Fatalf("lease = %v, %v", dead, err)
	}
	b := w.proc(t, true, nil)
	mustGetValue(t, b.cache, "k", "v")
	st := b.cache.Stats().Leases
	if w.src.calls.Load() != 1 || st.Waits != 1 || st.Won != 1 || st.Timeouts != 0 || st.Fills != 1 {
		t.Fatalf("%d loads, lease stats %+v; want one load under a lease taken over", w.src.calls.Load(), st)
	}
}

// Past the wait limit a waiter loads the key itself, and leaves the top
// tier to the lease holder.
func TestLeaseWaitLimit(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"k": "v"})
	if _, err := w.top.Lease(context.Background(), []string{"k"}, LeaseRequest{TTL: time.Hour, Now: w.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	b := w.proc(t, true, []LeaseOption{WithLeaseWait(time.Second)})
	mustGetValue(t, b.cache, "k", "v")
	if st := b.cache.Stats().Leases; st.Timeouts != 1 || st.Fills != 0 {
		t.Fatalf("lease stats %+v, want one timeout and no fill", st)
	}
	if it, _ := w.top.item("k"); !it.stub {
		t.Fatalf("top tier after a self-load = %+v, want the holder's stub", it)
	}
	if e, ok := b.disk.entry("k"); !ok || string(e.Value) != "v" || e.Loaded.IsZero() {
		t.Fatalf("durable tier = %+v, %v; want v with its load time", e, ok)
	}
}

// A waiter whose context ends stops waiting at once; the flight goes on
// waiting for the holder's fill, and the next caller joins it.
func TestLeaseWaiterContext(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"k": "v"})
	held, err := w.top.Lease(context.Background(), []string{"k"}, LeaseRequest{TTL: time.Hour, Now: w.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	b := w.proc(t, false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.cache.Get(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get = %v, want the deadline", err)
	}
	next := make(chan string)
	go func() {
		v, _ := b.cache.Get(context.Background(), "k")
		next <- string(v)
	}()
	waitFor(t, func() bool { return b.cache.Stats().SharedWaits == 1 })
	e := Entry{Value: []byte("v"), Expires: w.clock.Now().Add(time.Minute)}
	if err := w.top.Fill(context.Background(), "k", held["k"], LeaseWrite{Entry: &e}); err != nil {
		t.Fatal(err)
	}
	if v := <-next; v != "v" {
		t.Fatalf("the caller that joined got %q, want v", v)
	}
	if n, f := w.src.calls.Load(), b.cache.Stats().Flights; n != 0 || f != 1 {
		t.Fatalf("%d loads and %d flights, want 0 and 1", n, f)
	}
}

// Without a reachable top tier, leases fall back to in-process
// singleflight; invalidations report the top tier's failure.
func TestLeaseFallback(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"k": "v"})
	a := w.proc(t, false, nil)
	w.top.fail.Store(true)
	mustGetValue(t, a.cache, "k", "v")
	if st := a.cache.Stats().Leases; st.Fallbacks != 1 {
		t.Fatalf("lease stats %+v, want one fallback", st)
	}
	err := a.cache.Delete(context.Background(), "k")
	if err == nil || !errors.Is(err, errDown) {
		t.Fatalf("Delete with the top tier down: %v", err)
	}
	if _, ok := a.disk.entry("k"); ok {
		t.Fatal("the durable tier kept the key")
	}
}

// GetMulti stays bulk: one lease call and one load for a batch.
func TestLeaseGetMultiBulk(t *testing.T) {
	t.Parallel()
	rows := make(map[string]string)
	var keys []string
	for i := range 100 {
		k := fmt.Sprint("k", i)
		rows[k], keys = "v"+k, append(keys, k)
	}
	w := newLeaseWorld(rows)
	a := w.proc(t, false, nil)
	m, err := a.cache.GetMulti(context.Background(), keys)
	if err != nil || len(m) != 100 {
		t.Fatalf("GetMulti: %d values, %v", len(m), err)
	}
	filled(t, a.cache)
	if l, c := w.top.leaseCalls.Load(), w.src.calls.Load(); l != 1 || c != 1 {
		t.Fatalf("%d lease calls and %d loads, want 1 and 1", l, c)
	}
	if st := a.cache.Stats().Leases; st.Won != 100 || st.Fills != 100 {
		t.Fatalf("lease stats %+v", st)
	}
}

// An absent row answers the waiters through the top tier even with
// negative caching off, for a second.
func TestLeaseNegativeWithoutNegativeCaching(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(nil)
	disk := newMemTier("disk")
	c, err := New(w.src, WithTier(w.top, time.Minute), WithTier(disk, time.Hour), WithClock(w.clock), WithLeases())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get = %v, want ErrNotFound", err)
	}
	filled(t, c)
	it, _ := w.top.item("nope")
	if it.entry == nil || !it.entry.Negative || !it.entry.Expires.Equal(w.clock.Now().Add(time.Second)) {
		t.Fatalf("top tier = %+v, want a negative entry for 1s", it)
	}
	if _, ok := disk.entry("nope"); ok {
		t.Fatal("negative entry in the durable tier with negative caching off")
	}
}

// Set leaves the value and a marker in the top tier, and a durable copy
// that outranks the marker.
func TestLeaseSetMarker(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"k": "v1"})
	a, b := w.proc(t, false, nil), w.proc(t, false, nil)
	mustGetValue(t, b.cache, "k", "v1")
	w.clock.Advance(time.Minute)
	w.src.put("k", "v2")
	if err := a.cache.Set(context.Background(), "k", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	it, _ := w.top.item("k")
	now := w.clock.Now()
	if it.entry == nil || string(it.entry.Value) != "v2" || !it.marker.At.Equal(now) || !it.marker.Until.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("top tier = %+v, want v2 with a marker kept a day", it)
	}
	w.clock.Advance(11 * time.Minute)
	calls := w.src.calls.Load()
	mustGetValue(t, a.cache, "k", "v2") // a's own copy, newer than its marker
	if n := w.src.calls.Load() - calls; n != 0 {
		t.Fatalf("%d loads for a's own copy, want 0", n)
	}
	w.clock.Advance(11 * time.Minute)
	mustGetValue(t, b.cache, "k", "v2") // b's copy, v1, is older than the marker
	if st := b.cache.Stats().Leases; st.Rejected != 1 {
		t.Fatalf("b rejected %d durable copies, want 1", st.Rejected)
	}
}

func TestLeaseOptions(t *testing.T) {
	t.Parallel()
	top := newLeaseTier(newFakeClock())
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"top tier cannot lease", []Option{WithTier(newMemTier("m"), time.Minute), WithLeases()}},
		{"no tiers", []Option{WithLeases()}},
		{"short lease", []Option{WithTier(top, time.Minute), WithLeases(WithLeaseTTL(time.Millisecond))}},
		{"no wait", []Option{WithTier(top, time.Minute), WithLeases(WithLeaseWait(0))}},
		{"negative skew", []Option{WithTier(top, time.Minute), WithLeases(WithClockSkew(-time.Second))}},
		{"negative marker TTL", []Option{WithTier(top, time.Minute), WithLeases(WithMarkerTTL(-time.Second))}},
		{"stale without leases", []Option{WithTier(top, time.Minute), WithStaleWhileRevalidate(time.Second)}},
		{"zero grace", []Option{WithTier(top, time.Minute), WithLeases(), WithStaleWhileRevalidate(0)}},
		{"zero beta", []Option{WithTier(top, time.Minute), WithEarlyRefresh(0)}},
		{"jitter too wide", []Option{WithTier(top, time.Minute), WithTTLJitter(0.7)}},
		{"no refreshes", []Option{WithTier(top, time.Minute), WithEarlyRefresh(1), WithRefreshConcurrency(0)}},
	} {
		if c, err := New(newMapLoader(nil), tc.opts...); err == nil {
			c.Close()
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}

func TestLeaseMarkerTTL(t *testing.T) {
	t.Parallel()
	top := newLeaseTier(newFakeClock())
	for _, tc := range []struct {
		name string
		opts []Option
		want time.Duration
	}{
		{"longest durable TTL", []Option{WithTier(top, time.Minute), WithTier(newMemTier("a"), time.Hour), WithTier(newMemTier("b"), 2*time.Hour), WithLeases()}, 2 * time.Hour},
		{"stretched by jitter", []Option{WithTier(top, time.Minute), WithTier(newMemTier("a"), time.Hour), WithTTLJitter(0.1), WithLeases()}, 66 * time.Minute},
		{"durable tier never expires", []Option{WithTier(top, time.Minute), WithTier(newMemTier("a"), 0), WithLeases()}, 0},
		{"no durable tier", []Option{WithTier(top, time.Minute), WithLeases()}, DefaultLeaseTTL},
		{"given", []Option{WithTier(top, time.Minute), WithTier(newMemTier("a"), time.Hour), WithLeases(WithMarkerTTL(5 * time.Hour))}, 5 * time.Hour},
	} {
		c, err := New(newMapLoader(nil), tc.opts...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.lease.markerTTL != tc.want {
			t.Errorf("%s: marker TTL %v, want %v", tc.name, c.lease.markerTTL, tc.want)
		}
		c.Close()
	}
}

func TestLeaseNoGoroutineLeak(t *testing.T) {
	w := newLeaseWorld(map[string]string{"a": "1", "b": "2"})
	before := runtime.NumGoroutine()
	a := w.proc(t, false, nil, WithEarlyRefresh(1), WithStaleWhileRevalidate(time.Minute))
	b := w.proc(t, false, nil, WithEarlyRefresh(1))
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			p := []*proc{a, b}[i%2]
			p.cache.Get(context.Background(), fmt.Sprint([]string{"a", "b", "c"}[i%3]))
			p.cache.GetMulti(context.Background(), []string{"a", "b", fmt.Sprint(i)})
			if i%10 == 0 {
				w.clock.Advance(3 * time.Minute)
				p.cache.Delete(context.Background(), "a")
			}
		})
	}
	wg.Wait()
	a.cache.Close()
	b.cache.Close()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
}

// A caller that joins a load which read the key before the caller arrived
// does not take its value: another process may have invalidated the key
// in between, as here.
func TestLeaseLateJoinerLoadsAgain(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"k": "v1"})
	a, b := w.proc(t, false, nil), w.proc(t, false, nil)
	paused, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	w.top.beforeFill = func(string) { once.Do(func() { close(paused); <-resume }) }
	first := make(chan string)
	go func() {
		v, _ := a.cache.Get(context.Background(), "k")
		first <- string(v)
	}()
	<-paused // a's load has read v1 and is about to fill
	w.src.put("k", "v2")
	if err := b.cache.Delete(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	// This caller begins after the Delete returned; a's load is still in
	// flight, and it joins it.
	late := make(chan string)
	go func() {
		v, _ := a.cache.Get(context.Background(), "k")
		late <- string(v)
	}()
	waitFor(t, func() bool { return a.cache.Stats().SharedWaits == 1 })
	close(resume)
	if v := <-first; v != "v1" {
		t.Errorf("the first caller got %q, want v1", v)
	}
	if v := <-late; v != "v2" {
		t.Errorf("the caller that came after the Delete got %q, want v2", v)
	}
	filled(t, a.cache)
	if st := a.cache.Stats().Leases; st.Rejoins != 1 || st.Refused != 1 {
		t.Errorf("lease stats %+v, want one rejoin and one refused fill", st)
	}
}
