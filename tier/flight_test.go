package tier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent Gets and GetMultis of a key share one trip through the chain,
// the top tier included: one lookup in each tier and one load, cold or
// warm.
func TestCoalesceFirst(t *testing.T) {
	t.Parallel()
	for _, warm := range []bool{false, true} {
		t.Run(map[bool]string{false: "cold", true: "warm"}[warm], func(t *testing.T) {
			t.Parallel()
			ch := newChain(t, map[string]string{"hot": "value"})
			if warm {
				ch.top.m["hot"] = Entry{Value: []byte("value")}
			}
			release := make(chan struct{})
			ch.top.beforeGet = func() { <-release }
			const callers = 1000
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for i := range callers {
				wg.Go(func() {
					var v []byte
					var err error
					if i%2 == 0 {
						v, err = ch.cache.Get(context.Background(), "hot")
					} else {
						var m map[string][]byte
						m, err = ch.cache.GetMulti(context.Background(), []string{"hot"})
						v = m["hot"]
					}
					if err == nil && string(v) != "value" {
						err = fmt.Errorf("got %q", v)
					}
					if err != nil {
						errs <- err
					}
				})
			}
			waitFor(t, func() bool { return ch.cache.Stats().SharedWaits == callers-1 })
			close(release)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			filled(t, ch.cache)
			top := ch.top.gets.Load() + ch.top.multiGets.Load()
			disk := ch.disk.gets.Load() + ch.disk.multiGets.Load()
			wantDisk, wantLoads := int64(1), int64(1)
			if warm {
				wantDisk, wantLoads = 0, 0
			}
			if top != 1 || disk != wantDisk || ch.src.calls.Load() != wantLoads {
				t.Errorf("%d top lookups, %d disk lookups, %d loads; want 1, %d, %d", top, disk, ch.src.calls.Load(), wantDisk, wantLoads)
			}
			if f := ch.cache.Stats().Flights; f != 1 {
				t.Errorf("%d flights, want 1", f)
			}
		})
	}
}

// A Get or GetMulti whose context is already done does no I/O.
func TestDoneContextDoesNoIO(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"k": "v"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 100 {
		if _, err := ch.cache.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Get = %v, want context.Canceled", err)
		}
		if _, err := ch.cache.GetMulti(ctx, []string{"k", "j"}); !errors.Is(err, context.Canceled) {
			t.Fatalf("GetMulti = %v, want context.Canceled", err)
		}
	}
	calls := ch.top.gets.Load() + ch.top.multiGets.Load() + ch.disk.gets.Load() + ch.disk.multiGets.Load() + ch.src.calls.Load()
	if calls != 0 || ch.cache.Stats().Flights != 0 {
		t.Fatalf("%d tier and loader calls, %d flights; want none", calls, ch.cache.Stats().Flights)
	}
}

// No more than WithLoadConcurrency loads run at once; the others wait.
func TestLoadConcurrencyBound(t *testing.T) {
	t.Parallel()
	ch := newChain(t, nil, WithLoadConcurrency(2))
	var running, most atomic.Int64
	release := make(chan struct{})
	ch.src.hook = func(context.Context, []string) error {
		n := running.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		return nil
	}
	var wg sync.WaitGroup
	for i := range 10 {
		key := fmt.Sprint("k", i)
		ch.src.put(key, "v")
		wg.Go(func() {
			if v, err := ch.cache.Get(context.Background(), key); err != nil || string(v) != "v" {
				t.Errorf("Get(%s) = %q, %v", key, v, err)
			}
		})
	}
	waitFor(t, func() bool { return ch.cache.Stats().Loader.Waits == 8 })
	close(release)
	wg.Wait()
	if m := most.Load(); m != 2 {
		t.Errorf("%d loads at once, want 2", m)
	}
}

// A load that waits the whole load timeout for a slot is shed.
func TestLoadShed(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"a": "1", "b": "2"}, WithLoadConcurrency(1), WithLoadTimeout(50*time.Millisecond))
	release := make(chan struct{})
	ch.src.hook = func(_ context.Context, keys []string) error {
		if keys[0] == "a" {
			<-release // ignores its context, as a stuck driver would
		}
		return nil
	}
	defer close(release)
	go ch.cache.Get(context.Background(), "a")
	waitFor(t, func() bool { return ch.src.calls.Load() == 1 })
	if _, err := ch.cache.Get(context.Background(), "b"); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("Get = %v, want ErrOverloaded", err)
	}
	if st := ch.cache.Stats().Loader; st.Shed != 1 || st.Statements != 1 {
		t.Fatalf("loader stats %+v, want one shed and one statement", st)
	}
}

// After a run of failures the breaker fails loads at once, or serves a
// stale copy where allowed; after the cool-down one probe goes through,
// and its success closes it.
func TestBreaker(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"k": "v"}, WithBreaker(3, time.Minute), WithStaleIfError(time.Hour))
	down := errors.New("db down")
	var failing atomic.Bool
	failing.Store(true)
	ch.src.hook = func(context.Context, []string) error {
		if failing.Load() {
			return down
		}
		return nil
	}
	for i := range 3 {
		if _, err := ch.cache.Get(context.Background(), fmt.Sprint("x", i)); !errors.Is(err, down) {
			t.Fatalf("Get #%d = %v, want the loader's error", i, err)
		}
	}
	for i := range 10 {
		if _, err := ch.cache.Get(context.Background(), fmt.Sprint("y", i)); !errors.Is(err, ErrSourceDown) {
			t.Fatalf("Get while open = %v, want ErrSourceDown", err)
		}
	}
	ch.disk.m["s"] = Entry{Value: []byte("stale"), Expires: ch.clock.Now().Add(-time.Minute)}
	if v, err := ch.cache.Get(context.Background(), "s"); err != nil || string(v) != "stale" {
		t.Fatalf("Get while open = %q, %v; want the stale copy", v, err)
	}
	if n := ch.src.calls.Load(); n != 3 {
		t.Fatalf("%d loads, want 3: the breaker lets none through", n)
	}
	ch.clock.Advance(time.Minute)
	if _, err := ch.cache.Get(context.Background(), "z"); !errors.Is(err, down) {
		t.Fatalf("probe = %v, want the loader's error", err)
	}
	if _, err := ch.cache.Get(context.Background(), "z2"); !errors.Is(err, ErrSourceDown) {
		t.Fatalf("after a failed probe = %v, want ErrSourceDown", err)
	}
	ch.clock.Advance(time.Minute)
	failing.Store(false)
	mustGetValue(t, ch.cache, "k", "v")
	ch.cache.Delete(context.Background(), "k")
	mustGetValue(t, ch.cache, "k", "v")
	st := ch.cache.Stats().Loader
	if st.Trips != 1 || st.Rejected != 12 || st.Statements != 6 {
		t.Fatalf("loader stats %+v, want 1 trip, 12 rejected, 6 statements", st)
	}
}

// The caller has its value before the tiers are filled; a Delete that
// returns before the fill lands still wins.
func TestFillAfterAnswerDeleteWins(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"k": "v1"})
	adding, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ch.top.beforeAdd = func(string) {
		once.Do(func() {
			close(adding)
			<-release
		})
	}
	mustGet := func(want string) {
		t.Helper()
		if v, err := ch.cache.Get(context.Background(), "k"); err != nil || string(v) != want {
			t.Fatalf("Get = %q, %v; want %q", v, err, want)
		}
	}
	mustGet("v1") // answered while the fill waits
	<-adding
	if p := ch.cache.Stats().Fills.Pending; p != 1 {
		t.Fatalf("%d fills pending, want 1", p)
	}
	mustGet("v1") // joins the flight still filling: no second load
	ch.src.put("k", "v2")
	if err := ch.cache.Delete(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	close(release)
	filled(t, ch.cache)
	for _, tier := range []*memTier{ch.top, ch.disk} {
		if e, ok := tier.entry("k"); ok {
			t.Errorf("%s holds %q after the Delete", tier.name, e.Value)
		}
	}
	mustGet("v2")
	if n := ch.src.calls.Load(); n != 2 {
		t.Errorf("%d loads, want 2", n)
	}
}

// A panic in a tier during a fill is recovered and counted; the caller
// has its value.
func TestFillPanic(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"k": "v"})
	ch.top.beforeAdd = func(string) { panic("tier bug") }
	mustGetValue(t, ch.cache, "k", "v")
	if st := ch.cache.Stats().Fills; st.Panics != 1 || st.Pending != 0 {
		t.Fatalf("fill stats %+v, want one panic", st)
	}
}
