package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/clocktest"
)

type chain struct {
	cache *Cache
	top   *memTier
	disk  *memTier
	src   *mapLoader
	clock *clocktest.Clock
}

func newChain(t *testing.T, rows map[string]string, opts ...Option) *chain {
	t.Helper()
	ch := &chain{top: newMemTier("top"), disk: newMemTier("disk"), src: newMapLoader(rows), clock: newFakeClock()}
	base := []Option{
		WithTier(ch.top, 10*time.Minute),
		WithTier(ch.disk, 24*time.Hour),
		WithNegativeTTL(30 * time.Second),
		WithClock(ch.clock),
	}
	c, err := New(ch.src, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ch.cache = c
	t.Cleanup(func() { c.Close() })
	return ch
}

func TestReadThroughBackfillsEveryTier(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"42": "answer"})
	ctx := context.Background()

	v, err := ch.cache.Get(ctx, "42")
	if err != nil || string(v) != "answer" {
		t.Fatalf("Get = %q, %v; want answer", v, err)
	}
	filled(t, ch.cache)
	now := ch.clock.Now()
	for _, tc := range []struct {
		tier *memTier
		ttl  time.Duration
	}{{ch.top, 10 * time.Minute}, {ch.disk, 24 * time.Hour}} {
		e, ok := tc.tier.entry("42")
		if !ok {
			t.Fatalf("%s: not backfilled", tc.tier.name)
		}
		if !e.Expires.Equal(now.Add(tc.ttl)) {
			t.Errorf("%s: expires %v, want %v", tc.tier.name, e.Expires, now.Add(tc.ttl))
		}
	}
	if _, err := ch.cache.Get(ctx, "42"); err != nil {
		t.Fatal(err)
	}
	if n := ch.src.calls.Load(); n != 1 {
		t.Errorf("loader calls = %d, want 1", n)
	}
	st := ch.cache.Stats()
	if st.Tiers[0].Hits != 1 || st.Tiers[0].Misses != 1 {
		t.Errorf("top hits/misses = %d/%d, want 1/1", st.Tiers[0].Hits, st.Tiers[0].Misses)
	}
	if st.Loader.Statements != 1 || st.Loader.Loaded != 1 {
		t.Errorf("loader stats = %+v", st.Loader)
	}
}

func TestBackfillKeepsRemainingTTL(t *testing.T) {
	t.Parallel()
	ch := newChain(t, nil)
	ctx := context.Background()
	now := ch.clock.Now()

	cases := []struct {
		name    string
		expires time.Time
		want    time.Time
	}{
		{"remaining shorter than top TTL", now.Add(3 * time.Minute), now.Add(3 * time.Minute)},
		{"remaining longer is capped", now.Add(5 * time.Hour), now.Add(10 * time.Minute)},
		{"never expires is capped", time.Time{}, now.Add(10 * time.Minute)},
	}
	for i, tc := range cases {
		key := fmt.Sprint("k", i)
		ch.disk.m[key] = Entry{Value: []byte("v"), Expires: tc.expires}
		if _, err := ch.cache.Get(ctx, key); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		filled(t, ch.cache)
		e, ok := ch.top.entry(key)
		if !ok || !e.Expires.Equal(tc.want) {
			t.Errorf("%s: top expires %v (present %v), want %v", tc.name, e.Expires, ok, tc.want)
		}
	}
	if n := ch.src.calls.Load(); n != 0 {
		t.Errorf("loader calls = %d, want 0", n)
	}
}

func TestExpiredEntryIsAMiss(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"a": "new"})
	now := ch.clock.Now()
	ch.top.m["a"] = Entry{Value: []byte("old"), Expires: now.Add(-time.Second)}
	ch.disk.m["a"] = Entry{Value: []byte("old"), Expires: now}
	v, err := ch.cache.Get(context.Background(), "a")
	if err != nil || string(v) != "new" {
		t.Fatalf("Get = %q, %v; want new", v, err)
	}
}

func TestNegativeCaching(t *testing.T) {
	t.Parallel()
	ch := newChain(t, nil)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := ch.cache.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get #%d: err = %v, want ErrNotFound", i, err)
		}
	}
	if n := ch.src.calls.Load(); n != 1 {
		t.Errorf("loader calls = %d, want 1", n)
	}
	filled(t, ch.cache)
	for _, tier := range []*memTier{ch.top, ch.disk} {
		e, ok := tier.entry("missing")
		if !ok || !e.Negative || !e.Expires.Equal(ch.clock.Now().Add(30*time.Second)) {
			t.Errorf("%s: entry %+v present=%v, want negative for 30s", tier.name, e, ok)
		}
	}
	ch.clock.Advance(31 * time.Second)
	ch.src.put("missing", "here now")
	v, err := ch.cache.Get(ctx, "missing")
	if err != nil || string(v) != "here now" {
		t.Fatalf("after negative TTL: Get = %q, %v", v, err)
	}
}

func TestNegativeCachingOff(t *testing.T) {
	t.Parallel()
	c, err := New(newMapLoader(nil), WithTier(newMemTier("top"), time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(context.Background(), "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	filled(t, c)
	if _, ok := c.tiers[0].tier.(*memTier).entry("x"); ok {
		t.Error("negative entry stored with negative caching off")
	}
}

func TestStampedeOneLoad(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"hot": "value"})
	release := make(chan struct{})
	ch.src.hook = func(ctx context.Context, _ []string) error {
		<-release
		return nil
	}
	const callers = 1000
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := ch.cache.Get(context.Background(), "hot")
			if err == nil && string(v) != "value" {
				err = fmt.Errorf("got %q", v)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	// Let the callers pile up on the flight, then let the load finish.
	waitFor(t, func() bool { return ch.cache.Stats().SharedWaits > 0 })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := ch.src.calls.Load(); n != 1 {
		t.Errorf("loader calls = %d, want 1", n)
	}
}

func TestCallerCancelDoesNotFailOthers(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"k": "v"})
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	ch.src.hook = func(ctx context.Context, _ []string) error {
		once.Do(func() { close(started) })
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	firstCtx, cancelFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := ch.cache.Get(firstCtx, "k")
		firstErr <- err
	}()
	<-started
	second := make(chan error, 1)
	go func() {
		v, err := ch.cache.Get(context.Background(), "k")
		if err == nil && string(v) != "v" {
			err = fmt.Errorf("got %q", v)
		}
		second <- err
	}()
	waitFor(t, func() bool { return ch.cache.Stats().SharedWaits == 1 })
	cancelFirst()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: err = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-second; err != nil {
		t.Fatalf("second caller: %v", err)
	}
}

func TestCallerDeadlineBoundsWait(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"slow": "v"})
	release := make(chan struct{})
	ch.src.hook = func(ctx context.Context, _ []string) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return ctx.Err()
	}
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := ch.cache.Get(ctx, "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}

// A load every caller left keeps running, and the next caller joins it
// instead of starting another.
func TestAbandonedLoadIsJoined(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"k": "v"})
	release := make(chan struct{})
	ch.src.hook = func(ctx context.Context, _ []string) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitFor(t, func() bool { return ch.src.calls.Load() == 1 })
		cancel()
	}()
	if _, err := ch.cache.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	next := make(chan error)
	go func() {
		v, err := ch.cache.Get(context.Background(), "k")
		if err == nil && string(v) != "v" {
			err = fmt.Errorf("got %q", v)
		}
		next <- err
	}()
	waitFor(t, func() bool { return ch.cache.Stats().SharedWaits == 1 })
	close(release)
	if err := <-next; err != nil {
		t.Fatal(err)
	}
	if n := ch.src.calls.Load(); n != 1 {
		t.Errorf("loader calls = %d, want 1", n)
	}
}

// Past the load timeout a load is cancelled, even with callers waiting.
func TestLoadTimeoutCancelsLoad(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"k": "v"}, WithLoadTimeout(50*time.Millisecond))
	loadErr := make(chan error, 1)
	ch.src.hook = func(ctx context.Context, _ []string) error {
		<-ctx.Done()
		loadErr <- ctx.Err()
		return ctx.Err()
	}
	if _, err := ch.cache.Get(context.Background(), "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the load timeout", err)
	}
	if err := <-loadErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("load ctx err = %v", err)
	}
}

func TestLoaderPanicIsAnErrorForEveryWaiter(t *testing.T) {
	t.Parallel()
	ch := newChain(t, nil)
	release := make(chan struct{})
	ch.src.hook = func(context.Context, []string) error {
		<-release
		panic("boom")
	}
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = ch.cache.Get(context.Background(), "p")
		}()
	}
	waitFor(t, func() bool { return ch.cache.Stats().SharedWaits == 9 })
	close(release)
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrLoaderPanic) {
			t.Errorf("caller %d: err = %v, want ErrLoaderPanic", i, err)
		}
	}
	if p := ch.cache.Stats().Loader.Panics; p != 1 {
		t.Errorf("panics = %d, want 1", p)
	}
}

func TestBrokenTopTierIsAMiss(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"k": "v"})
	ch.top.fail.Store(true)
	for i := 0; i < 3; i++ {
		v, err := ch.cache.Get(context.Background(), "k")
		if err != nil || string(v) != "v" {
			t.Fatalf("Get = %q, %v", v, err)
		}
		filled(t, ch.cache)
	}
	if n := ch.src.calls.Load(); n != 1 {
		t.Errorf("loader calls = %d, want 1 (the disk tier answers after the first)", n)
	}
	st := ch.cache.Stats()
	if st.Tiers[0].Errors == 0 || st.Tiers[1].Hits != 2 {
		t.Errorf("stats = %+v", st.Tiers)
	}
	m, err := ch.cache.GetMulti(context.Background(), []string{"k"})
	if err != nil || string(m["k"]) != "v" {
		t.Errorf("GetMulti = %v, %v", m, err)
	}
}

func TestDeleteDuringLoadWins(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"k": "v1"})
	loading := make(chan struct{})
	deleted := make(chan struct{})
	ch.src.hook = func(context.Context, []string) error {
		close(loading)
		<-deleted
		return nil
	}
	got := make(chan []byte, 1)
	go func() {
		v, _ := ch.cache.Get(context.Background(), "k")
		got <- v
	}()
	<-loading
	ch.src.put("k", "v2")
	if err := ch.cache.Delete(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	close(deleted)
	<-got
	filled(t, ch.cache)
	for _, tier := range []*memTier{ch.top, ch.disk} {
		if e, ok := tier.entry("k"); ok {
			t.Errorf("%s holds %q after Delete", tier.name, e.Value)
		}
	}
	ch.src.hook = nil
	v, err := ch.cache.Get(context.Background(), "k")
	if err != nil || string(v) != "v2" {
		t.Fatalf("after Delete: Get = %q, %v; want v2", v, err)
	}
}

func TestDeleteRacingBackfillWriteIsUndone(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"k": "v1"})
	// The Delete runs after the load's generation check and just before
	// its write reaches the top tier: the worst interleaving.
	var once sync.Once
	ch.top.beforeAdd = func(key string) {
		once.Do(func() {
			if err := ch.cache.Delete(context.Background(), key); err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := ch.cache.Get(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	filled(t, ch.cache)
	for _, tier := range []*memTier{ch.top, ch.disk} {
		if e, ok := tier.entry("k"); ok {
			t.Errorf("%s holds %q after a racing Delete", tier.name, e.Value)
		}
	}
}

func TestSetWritesEveryTierAndWins(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"k": "v1"})
	if _, err := ch.cache.Get(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	if err := ch.cache.Set(context.Background(), "k", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	for _, tier := range []*memTier{ch.top, ch.disk} {
		if e, _ := tier.entry("k"); string(e.Value) != "v2" {
			t.Errorf("%s holds %q, want v2", tier.name, e.Value)
		}
	}
	ch.top.fail.Store(true)
	err := ch.cache.Set(context.Background(), "k", []byte("v3"))
	if !errors.Is(err, errDown) || !strings.Contains(err.Error(), "top") {
		t.Errorf("Set with a broken tier: err = %v, want one naming the top tier", err)
	}
	if e, _ := ch.disk.entry("k"); string(e.Value) != "v3" {
		t.Errorf("disk holds %q, want v3", e.Value)
	}
}

func TestGetMultiBulkPath(t *testing.T) {
	t.Parallel()
	rows := map[string]string{}
	keys := []string{}
	for i := 0; i < 1200; i++ {
		k := fmt.Sprint("row", i)
		keys = append(keys, k)
		if i%10 != 0 {
			rows[k] = "v" + k
		}
	}
	ch := newChain(t, rows)
	ctx := context.Background()
	// A few keys already in the top tier, a few in the disk tier.
	ch.top.m["row1"] = Entry{Value: []byte("top")}
	ch.disk.m["row2"] = Entry{Value: []byte("disk")}

	m, err := ch.cache.GetMulti(ctx, append(keys, "row1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1080 {
		t.Errorf("len = %d, want 1080", len(m))
	}
	if string(m["row1"]) != "top" || string(m["row2"]) != "disk" || string(m["row3"]) != "vrow3" {
		t.Errorf("values: row1=%q row2=%q row3=%q", m["row1"], m["row2"], m["row3"])
	}
	if _, ok := m["row10"]; ok {
		t.Error("absent key present in map")
	}
	if n := ch.src.calls.Load(); n != 3 {
		t.Errorf("loader calls = %d, want 3 (1198 keys in batches of 500)", n)
	}
	if n := ch.top.multiGets.Load(); n != 1 {
		t.Errorf("top multi-gets = %d, want 1", n)
	}
	if n := ch.disk.multiGets.Load(); n != 1 {
		t.Errorf("disk multi-gets = %d, want 1", n)
	}
	// Everything is now in the top tier: a second call loads nothing.
	if _, err := ch.cache.GetMulti(ctx, keys); err != nil {
		t.Fatal(err)
	}
	if n := ch.src.calls.Load(); n != 3 {
		t.Errorf("loader calls after warm GetMulti = %d, want 3", n)
	}
}

func TestGetMultiJoinsKeysInFlight(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"a": "A", "b": "B", "c": "C"})
	release := make(chan struct{})
	ch.src.hook = func(_ context.Context, keys []string) error {
		if len(keys) == 1 && keys[0] == "a" {
			<-release
		}
		return nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := ch.cache.Get(context.Background(), "a")
		done <- err
	}()
	waitFor(t, func() bool { return ch.src.calls.Load() == 1 })
	multi := make(chan map[string][]byte, 1)
	go func() {
		m, _ := ch.cache.GetMulti(context.Background(), []string{"a", "b", "c"})
		multi <- m
	}()
	waitFor(t, func() bool { return ch.src.keys.Load() == 3 })
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m := <-multi
	if string(m["a"]) != "A" || string(m["b"]) != "B" || string(m["c"]) != "C" {
		t.Errorf("GetMulti = %q", m)
	}
	if k := ch.src.keys.Load(); k != 3 {
		t.Errorf("keys loaded = %d, want 3 (a joined, not loaded twice)", k)
	}
}

func TestInvalidKeys(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"ok": "v", "": "empty key"}, WithMaxKeyLen(100))
	ctx := context.Background()
	long := strings.Repeat("x", 101)
	if _, err := ch.cache.Get(ctx, long); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Get(long) err = %v", err)
	}
	if ch.top.gets.Load() != 0 || ch.src.calls.Load() != 0 {
		t.Error("invalid key caused I/O")
	}
	if err := ch.cache.Set(ctx, long, nil); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Set(long) err = %v", err)
	}
	if err := ch.cache.Delete(ctx, long); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Delete(long) err = %v", err)
	}
	m, err := ch.cache.GetMulti(ctx, []string{"ok", long, ""})
	if !errors.Is(err, ErrInvalidKey) {
		t.Errorf("GetMulti err = %v, want ErrInvalidKey", err)
	}
	if string(m["ok"]) != "v" || string(m[""]) != "empty key" || len(m) != 2 {
		t.Errorf("GetMulti = %q, want the good keys", m)
	}
}

func TestStaleIfError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		opts    []Option
		age     time.Duration
		wantErr bool
	}{
		{"off by default", nil, time.Second, true},
		{"within window", []Option{WithStaleIfError(time.Hour)}, time.Minute, false},
		{"too old", []Option{WithStaleIfError(time.Hour)}, 2 * time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ch := newChain(t, nil, tc.opts...)
			ch.disk.m["k"] = Entry{Value: []byte("stale"), Expires: ch.clock.Now().Add(-tc.age)}
			dbDown := errors.New("db down")
			ch.src.hook = func(context.Context, []string) error { return dbDown }
			v, err := ch.cache.Get(context.Background(), "k")
			if tc.wantErr {
				if !errors.Is(err, dbDown) {
					t.Fatalf("err = %v, want the loader's error", err)
				}
				return
			}
			if err != nil || string(v) != "stale" {
				t.Fatalf("Get = %q, %v; want the stale copy", v, err)
			}
			if _, ok := ch.top.entry("k"); ok {
				t.Error("stale copy was backfilled")
			}
			if ch.cache.Stats().StaleServed != 1 {
				t.Error("StaleServed not counted")
			}
		})
	}
}

func TestWarmup(t *testing.T) {
	t.Parallel()
	ch := newChain(t, nil)
	now := ch.clock.Now()
	ch.disk.m["live"] = Entry{Value: []byte("L"), Expires: now.Add(time.Minute)}
	ch.disk.m["long"] = Entry{Value: []byte("G"), Expires: now.Add(time.Hour)}
	ch.disk.m["expired"] = Entry{Value: []byte("E"), Expires: now.Add(-time.Second)}
	ch.disk.m["negative"] = Entry{Negative: true, Expires: now.Add(time.Minute)}
	ch.disk.m["newer"] = Entry{Value: []byte("old"), Expires: now.Add(time.Hour)}
	ch.top.m["newer"] = Entry{Value: []byte("new"), Expires: now.Add(time.Minute)}

	st, err := ch.cache.Warmup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := WarmupStats{Runs: 1, Scanned: 5, Sent: 3, Written: 2, Skipped: 2, Present: 1}
	if !st.Last.Done || st.Last.Trigger != "Warmup" || st.Last.Written != 2 {
		t.Errorf("warmup progress = %+v, want done with 2 written", st.Last)
	}
	if st.Last = (WarmupProgress{}); st != want {
		t.Errorf("warmup = %+v, want %+v", st, want)
	}
	if e, _ := ch.top.entry("live"); !e.Expires.Equal(now.Add(time.Minute)) {
		t.Errorf("live expires %v, want remaining TTL", e.Expires)
	}
	if e, _ := ch.top.entry("long"); !e.Expires.Equal(now.Add(10 * time.Minute)) {
		t.Errorf("long expires %v, want capped at the top TTL", e.Expires)
	}
	if e, _ := ch.top.entry("newer"); string(e.Value) != "new" {
		t.Errorf("warmup overwrote newer data: %q", e.Value)
	}
	for _, k := range []string{"expired", "negative"} {
		if _, ok := ch.top.entry(k); ok {
			t.Errorf("%s was warmed", k)
		}
	}
	again, err := ch.cache.Warmup(context.Background())
	if err != nil || again.Written != 0 {
		t.Errorf("second warmup = %+v, %v; want nothing written", again, err)
	}
}

func TestWarmupWithoutDurableTier(t *testing.T) {
	t.Parallel()
	c, err := New(newMapLoader(nil), WithTier(newMemTier("top"), time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Warmup(context.Background()); !errors.Is(err, ErrNoDurableTier) {
		t.Errorf("err = %v", err)
	}
}

func TestTypedJSON(t *testing.T) {
	t.Parallel()
	type article struct {
		ID    int    `json:"id"`
		Title string `json:"title"`
	}
	ch := newChain(t, map[string]string{"1": `{"id":1,"title":"one"}`, "bad": "{"})
	typed := NewTyped[article](ch.cache, nil)
	a, err := typed.Get(context.Background(), "1")
	if err != nil || a.Title != "one" {
		t.Fatalf("Get = %+v, %v", a, err)
	}
	if _, err := typed.Get(context.Background(), "bad"); err == nil {
		t.Error("undecodable value: no error")
	}
	if err := typed.Set(context.Background(), "2", article{ID: 2, Title: "two"}); err != nil {
		t.Fatal(err)
	}
	m, err := typed.GetMulti(context.Background(), []string{"1", "2", "bad"})
	if err == nil || m["2"].Title != "two" || len(m) != 2 {
		t.Errorf("GetMulti = %+v, %v", m, err)
	}
}

func TestOptionErrors(t *testing.T) {
	t.Parallel()
	src := newMapLoader(nil)
	for _, tc := range []struct {
		name string
		opt  Option
	}{
		{"nil tier", WithTier(nil, time.Second)},
		{"negative ttl", WithTier(newMemTier("x"), -time.Second)},
		{"negative negative TTL", WithNegativeTTL(-1)},
		{"zero batch", WithLoadBatch(0)},
		{"zero stale", WithStaleIfError(0)},
		{"zero max key", WithMaxKeyLen(0)},
		{"nil clock", WithClock(nil)},
		{"zero backfill", WithBackfillConcurrency(0)},
	} {
		if _, err := New(src, tc.opt); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := New(nil); err == nil {
		t.Error("nil loader: no error")
	}
}

func TestClosedCache(t *testing.T) {
	t.Parallel()
	ch := newChain(t, map[string]string{"k": "v"})
	if err := ch.cache.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := ch.cache.Get(ctx, "k"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := ch.cache.GetMulti(ctx, []string{"k"}); !errors.Is(err, ErrClosed) {
		t.Errorf("GetMulti after Close: %v", err)
	}
	if err := ch.cache.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	ch := &chain{top: newMemTier("top"), disk: newMemTier("disk"), src: newMapLoader(map[string]string{"a": "1"})}
	c, err := New(ch.src, WithTier(ch.top, time.Minute), WithTier(ch.disk, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Get(context.Background(), fmt.Sprint(i%5))
			c.GetMulti(context.Background(), []string{"a", "b", fmt.Sprint(i)})
		}()
	}
	wg.Wait()
	if _, err := c.Warmup(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
}

func TestEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_800_000_000_123)
	for _, e := range []Entry{
		{Value: []byte("hello"), Expires: now},
		{Value: []byte{}, Expires: time.Time{}},
		{Negative: true, Expires: now},
		{Value: bytes.Repeat([]byte{0, '\r', '\n'}, 100)},
	} {
		got, err := DecodeEntry(EncodeEntry(e))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Value, e.Value) || !got.Expires.Equal(e.Expires) || got.Negative != e.Negative {
			t.Errorf("round trip %+v -> %+v", e, got)
		}
	}
	for _, bad := range [][]byte{nil, {1}, {2, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {1, 4, 0, 0, 0, 0, 0, 0, 0, 0}, append(EncodeEntry(Entry{Negative: true}), 'x')} {
		if _, err := DecodeEntry(bad); !errors.Is(err, ErrBadEnvelope) {
			t.Errorf("DecodeEntry(%v) err = %v", bad, err)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(EncodeEntry(Entry{Value: []byte("v"), Expires: time.UnixMilli(5)}))
	f.Add(EncodeEntry(Entry{Negative: true}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		again, err := DecodeEntry(EncodeEntry(e))
		if err != nil || !bytes.Equal(again.Value, e.Value) || !again.Expires.Equal(e.Expires) || again.Negative != e.Negative {
			t.Fatalf("re-encode of %+v gave %+v, %v", e, again, err)
		}
	})
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline. It is for waiting on goroutines, not for timing anything.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
