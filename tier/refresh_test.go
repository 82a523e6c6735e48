package tier

import (
	"context"
	"sync"
	"testing"
	"time"
)

// slowLoads makes every load of w's source take d of the fake clock, so
// that entries carry Delta = d.
func slowLoads(w *leaseWorld, d time.Duration) {
	w.src.hook = func(context.Context, []string) error {
		w.clock.Advance(d)
		return nil
	}
}

// hitUntil Gets key from c until cond holds: a hit may find the key's last
// load still finishing and start no refresh, and the next hit tries again.
func hitUntil(t *testing.T, c *Cache, key string, cond func() bool) {
	t.Helper()
	waitFor(t, func() bool {
		if _, err := c.Get(context.Background(), key); err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		return cond()
	})
}

func closed(ch chan struct{}) func() bool {
	return func() bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
}

func TestEarlyRefreshXFetch(t *testing.T) {
	t.Parallel()
	for _, leases := range []bool{false, true} {
		t.Run(map[bool]string{false: "in process", true: "with leases"}[leases], func(t *testing.T) {
			w := newLeaseWorld(map[string]string{"k": "v1"})
			slowLoads(w, 100*time.Millisecond)
			disk := newMemTier("disk")
			opts := []Option{WithTier(w.top, time.Minute), WithTier(disk, time.Hour), WithClock(w.clock), WithEarlyRefresh(1)}
			if leases {
				opts = append(opts, WithLeases())
			}
			c, err := New(w.src, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			mustGetValue(t, c, "k", "v1")
			e, _ := w.top.Get(context.Background(), "k")
			if e.Delta != 100*time.Millisecond || e.Loaded.IsZero() {
				t.Fatalf("entry %+v, want Delta 100ms and a load time", e)
			}
			w.src.put("k", "v2")

			// 50ms before expiry, a draw of u = 0.5 reaches 69ms ahead:
			// refresh. A draw of u = 1 never refreshes before expiry.
			w.clock.Advance(e.Expires.Sub(w.clock.Now()) - 50*time.Millisecond)
			c.rand = func() float64 { return 0 }
			mustGetValue(t, c, "k", "v1")
			if st := c.Stats().Refresh; st.Early != 0 {
				t.Fatalf("u = 1 refreshed: %+v", st)
			}
			c.rand = func() float64 { return 0.5 }
			w.src.hook = nil // the refresh must not move the clock past the expiry
			var wg sync.WaitGroup
			for range 10 {
				wg.Go(func() {
					// v1, or v2 once the refresh has landed: never a miss.
					if v, err := c.Get(context.Background(), "k"); err != nil || string(v) != "v1" && string(v) != "v2" {
						t.Errorf("Get = %q, %v", v, err)
					}
				})
			}
			wg.Wait()
			hitUntil(t, c, "k", func() bool { return c.Stats().Refresh.Done == 1 })
			if n := w.src.calls.Load(); n != 2 {
				t.Fatalf("%d loads, want 2: one refresh for ten hits", n)
			}
			mustGetValue(t, c, "k", "v2")
			if e, _ := disk.entry("k"); string(e.Value) != "v2" {
				t.Fatalf("durable tier = %q after the refresh, want v2", e.Value)
			}
			if st := c.Stats().Refresh; st.Started != 1 || st.Early < 1 {
				t.Fatalf("refresh stats %+v", st)
			}
		})
	}
}

// Two processes in the early-refresh window: only one refreshes, through
// the lease.
func TestEarlyRefreshOneProcess(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"k": "v1"})
	a, b := w.proc(t, false, nil, WithEarlyRefresh(1)), w.proc(t, false, nil, WithEarlyRefresh(1))
	slowLoads(w, 100*time.Millisecond)
	mustGetValue(t, a.cache, "k", "v1")
	e, _ := w.top.Get(context.Background(), "k")
	w.clock.Advance(e.Expires.Sub(w.clock.Now()) - 10*time.Millisecond)
	a.cache.rand = func() float64 { return 0.5 }
	b.cache.rand = func() float64 { return 0.5 }

	loading, release := make(chan struct{}), make(chan struct{})
	w.src.hook = func(context.Context, []string) error {
		close(loading)
		<-release
		return nil
	}
	w.src.put("k", "v2")
	hitUntil(t, a.cache, "k", closed(loading)) // a's refresh holds the lease
	hitUntil(t, b.cache, "k", func() bool { return b.cache.Stats().Refresh.Skipped == 1 })
	close(release)
	waitFor(t, func() bool { return a.cache.Stats().Refresh.Done == 1 })
	mustGetValue(t, b.cache, "k", "v2")
	if n := w.src.calls.Load(); n != 2 {
		t.Fatalf("%d loads, want 2", n)
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"k": "v1"})
	a := w.proc(t, false, nil, WithStaleWhileRevalidate(30*time.Second))
	mustGetValue(t, a.cache, "k", "v1")
	w.src.put("k", "v2")
	w.clock.Advance(10*time.Minute + 10*time.Second) // expired 10s ago
	mustGetValue(t, a.cache, "k", "v1")
	hitUntil(t, a.cache, "k", func() bool { return a.cache.Stats().Refresh.Done == 1 })
	mustGetValue(t, a.cache, "k", "v2")
	if st := a.cache.Stats().Refresh; st.Started != 1 {
		t.Fatalf("refresh stats %+v", st)
	}
	served := a.cache.Stats().Refresh.StaleServed

	// Past the grace window, the value is a top-tier miss like any other
	// (answered here by the durable tier, whose TTL is a day).
	w.clock.Advance(11 * time.Minute)
	mustGetValue(t, a.cache, "k", "v2")
	if st := a.cache.Stats().Refresh; st.StaleServed != served {
		t.Fatalf("served stale past the grace window: %+v", st)
	}

	// GetMulti serves stale values the same way.
	w.src.put("k", "v3")
	w.clock.Advance(10*time.Minute + time.Second)
	waitFor(t, func() bool {
		m, err := a.cache.GetMulti(context.Background(), []string{"k"})
		if err != nil || string(m["k"]) != "v2" && string(m["k"]) != "v3" {
			t.Fatalf("GetMulti = %q, %v; want the stale v2, or v3 once refreshed", m, err)
		}
		return a.cache.Stats().Refresh.Done == 2
	})
	mustGetValue(t, a.cache, "k", "v3")
}

// A value whose TTL is shorter than the lease TTL is refreshed at every
// expiry: a refresh that landed does not hold the next one off for the
// lease TTL, which is only there for the hits on a key another process is
// refreshing.
func TestRefreshAgainBeforeTheLeaseTTL(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"k": "v1"})
	c, err := New(w.src, WithTier(w.top, 2*time.Second), WithTier(newMemTier("disk"), time.Hour),
		WithClock(w.clock), WithLeases(WithLeaseTTL(3*time.Second)), WithStaleWhileRevalidate(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustGetValue(t, c, "k", "v1")
	for i, v := range []string{"v2", "v3", "v4"} {
		w.src.put("k", v)
		w.clock.Advance(2500 * time.Millisecond) // expired half a second ago
		hitUntil(t, c, "k", func() bool { return c.Stats().Refresh.Done == int64(i+1) })
		mustGetValue(t, c, "k", v)
	}
}

// A refresh that races with a Delete loses: its fill is refused.
func TestRefreshLosesToDelete(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"k": "v1"})
	a := w.proc(t, false, nil, WithStaleWhileRevalidate(time.Minute))
	mustGetValue(t, a.cache, "k", "v1")
	w.clock.Advance(10*time.Minute + time.Second)
	loading, release := make(chan struct{}), make(chan struct{})
	w.src.hook = func(context.Context, []string) error {
		close(loading)
		<-release
		return nil
	}
	hitUntil(t, a.cache, "k", closed(loading))
	w.src.hook = nil
	w.src.put("k", "v2")
	b := w.proc(t, false, nil)
	if err := b.cache.Delete(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	close(release)
	waitFor(t, func() bool { return a.cache.Stats().Refresh.Done == 1 })
	if st := a.cache.Stats().Leases; st.Refused != 1 {
		t.Fatalf("lease stats %+v, want the refresh's fill refused", st)
	}
	mustGetValue(t, a.cache, "k", "v2")
}

func TestTTLJitter(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"a": "1", "b": "2"}, WithTTLJitter(0.1))
	ch.cache.rand = func() float64 { return 0.75 } // factor 1.05
	mustGetValue(t, ch.cache, "a", "1")
	now := ch.clock.Now()
	for _, tc := range []struct {
		tier *memTier
		ttl  time.Duration
	}{{ch.top, 10 * time.Minute}, {ch.disk, 24 * time.Hour}} {
		e, _ := tc.tier.entry("a")
		if want := now.Add(tc.ttl * 105 / 100); !e.Expires.Equal(want) {
			t.Errorf("%s: expires %v, want %v", tc.tier.name, e.Expires, want)
		}
	}
	ch.cache.rand = func() float64 { return 0 } // factor 0.9
	if err := ch.cache.Set(context.Background(), "b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if e, _ := ch.top.entry("b"); !e.Expires.Equal(now.Add(9 * time.Minute)) {
		t.Errorf("Set: expires %v, want %v", e.Expires, now.Add(9*time.Minute))
	}
}

func TestTTLJitterSpreads(t *testing.T) {
	t.Parallel()
	ch := newChain(t, nil, WithTTLJitter(0.1))
	keys := make([]string, 200)
	for i := range keys {
		keys[i] = string(rune('a'+i%26)) + string(rune('a'+i/26))
		ch.src.put(keys[i], "v")
	}
	if _, err := ch.cache.GetMulti(context.Background(), keys); err != nil {
		t.Fatal(err)
	}
	filled(t, ch.cache)
	now := ch.clock.Now()
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for _, k := range keys {
		e, _ := ch.top.entry(k)
		d := e.Expires.Sub(now)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 9*time.Minute || hi > 11*time.Minute || hi-lo < time.Minute {
		t.Fatalf("TTLs from %v to %v; want them spread over 9m..11m", lo, hi)
	}
}

// Background refreshes are bounded: a hit beyond the bound starts none,
// serves what it found, and a later hit tries again.
func TestRefreshConcurrency(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"a": "a1", "b": "b1"})
	p := w.proc(t, false, nil, WithStaleWhileRevalidate(time.Minute), WithRefreshConcurrency(1))
	mustGetValue(t, p.cache, "a", "a1")
	mustGetValue(t, p.cache, "b", "b1")
	w.clock.Advance(10*time.Minute + time.Second)
	loading, release := make(chan struct{}), make(chan struct{})
	w.src.hook = func(context.Context, []string) error {
		select {
		case <-loading:
		default:
			close(loading)
			<-release
		}
		return nil
	}
	hitUntil(t, p.cache, "a", closed(loading)) // a's refresh runs, and waits
	mustGetValue(t, p.cache, "b", "b1")        // stale, and no room for a refresh
	if st := p.cache.Stats().Refresh; st.Throttled != 1 || st.Started != 1 {
		t.Fatalf("refresh stats %+v, want one started and one throttled", st)
	}
	close(release)
	hitUntil(t, p.cache, "b", func() bool { return p.cache.Stats().Refresh.Done == 2 })
}

// The gate: a refresh holds the key off; one that landed reopens it for
// the value it wrote, not for hits on the value it replaced.
func TestRefreshGate(t *testing.T) {
	t.Parallel()
	var g refreshGate
	now := time.Unix(1_800_000_000, 0)
	old, refreshed := Entry{Loaded: now.Add(-time.Minute)}, Entry{Loaded: now}
	hold := 3 * time.Second
	if !g.allow("k", old, now, hold) {
		t.Fatal("first refresh refused")
	}
	if g.allow("k", old, now.Add(time.Second), hold) {
		t.Fatal("second refresh allowed while the first may run")
	}
	g.landed("k", refreshed.Loaded)
	if g.allow("k", old, now.Add(time.Second), hold) {
		t.Fatal("a hit on the replaced value refreshed it again")
	}
	if !g.allow("k", refreshed, now.Add(2*time.Second), hold) {
		t.Fatal("the new value could not be refreshed before the hold ran out")
	}
	g.reopen("k")
	if g.allow("k", old, now.Add(2*time.Second), hold) {
		t.Fatal("reopen forgot which value was replaced")
	}
	if !g.allow("other", Entry{}, now, hold) {
		t.Fatal("another key refused")
	}
}
