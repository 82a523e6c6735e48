package memory_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/clocktest"
	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/loader/sqlload"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/store/memory"
	"github.com/tiercache/tiercache/tier"
)

// These tests run the memory tier on top of a real memcached and a real
// MariaDB, as a chain a user builds.

// source is a database with a table kv (k, v) of rows "1".."n" whose
// values are "v0", and the SQL loader reading it.
type source struct {
	db     *testenv.Database
	loader *sqlload.Loader
}

func newSource(t *testing.T, rows int) *source {
	t.Helper()
	db := testenv.MySQL(t)
	var values []string
	for i := 1; i <= rows; i++ {
		values = append(values, fmt.Sprintf("('%d', 'v0')", i))
	}
	for _, stmt := range []string{"CREATE TABLE kv (k VARCHAR(64) PRIMARY KEY, v VARBINARY(255) NOT NULL)", "INSERT INTO kv VALUES " + strings.Join(values, ",")} {
		if _, err := db.DB.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	l, err := sqlload.New(db.DB, "SELECT k, v FROM kv WHERE k IN (?)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &source{db: db, loader: l}
}

func (s *source) update(t *testing.T, key, value string) {
	t.Helper()
	if _, err := s.db.DB.Exec("UPDATE kv SET v = ? WHERE k = ?", value, key); err != nil {
		t.Fatal(err)
	}
}

// chain is one process's chain: its own memory tier over a memcached that
// other chains may share.
type chain struct {
	mem   *memory.Tier
	cache *tier.Cache
}

func newChain(t *testing.T, srv *testenv.MemcachedServer, src tier.Loader, clk tier.Clock, memTTL time.Duration, opts ...tier.Option) *chain {
	t.Helper()
	memOpts := []memory.Option{memory.WithTTL(memTTL)}
	mcOpts := []memcached.Option{memcached.WithTimeout(5 * time.Second)} // generous: a busy machine must not fail the test
	if clk != nil {
		memOpts = append(memOpts, memory.WithClock(clk))
		mcOpts = append(mcOpts, memcached.WithClock(clk))
		opts = append(opts, tier.WithClock(clk))
	}
	mem, err := memory.New(memOpts...)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := memcached.New([]string{srv.Addr}, mcOpts...)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := tier.New(src, append([]tier.Option{tier.WithTier(mem, 10*time.Minute), tier.WithTier(mc, 10*time.Minute)}, opts...)...)
	if err != nil {
		mem.Close()
		mc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	return &chain{mem: mem, cache: cache}
}

// newMemoryOnly is a memory tier with the default settings.
func newMemoryOnly(t *testing.T) *memory.Tier {
	t.Helper()
	m, err := memory.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestStampedeOneStatement: 200 callers of one cold key with memory on top
// cost one SQL statement, counted at the server, and then nothing more:
// once the value is in memory, the next 200 callers do not reach
// memcached.
func TestStampedeOneStatement(t *testing.T) {
	t.Parallel()
	src := newSource(t, 10)
	c := newChain(t, testenv.Memcached(t), src.loader, nil, time.Minute)
	ctx := context.Background()
	before := src.db.Selects(t)
	stampede := func() {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if v, err := c.cache.Get(ctx, "7"); err != nil || string(v) != "v0" {
					t.Errorf("Get = %q, %v", v, err)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	stampede()
	waitForMemory(t, c.mem, "7")
	mc := c.cache.Stats().Tiers[1]
	stampede()
	if n := src.db.Selects(t) - before; n != 1 {
		t.Fatalf("two stampedes of 200 callers: %d SELECTs at the server, want 1", n)
	}
	if now := c.cache.Stats().Tiers[1]; now.Hits+now.Misses != mc.Hits+mc.Misses {
		t.Fatalf("the second stampede reached memcached (%+v, before %+v): memory should have answered", now, mc)
	}
}

// waitForMemory waits until mem holds key: the chain may write a loaded
// value into its tiers after it has answered the callers.
func waitForMemory(t *testing.T, mem *memory.Tier, key string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // generous: a busy machine must not fail the test
	for {
		if _, err := mem.Get(context.Background(), key); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("memory never received %q", key)
		}
		time.Sleep(time.Millisecond)
	}
}

// gatedLoader holds a Load after it has read the source, until released,
// so that a test can invalidate a key while its load is in flight.
type gatedLoader struct {
	inner   tier.Loader
	read    chan struct{} // receives once a gated Load has read the source
	release chan struct{}
	gate    atomic.Bool
}

func (g *gatedLoader) Load(ctx context.Context, keys []string) (map[string][]byte, error) {
	values, err := g.inner.Load(ctx, keys)
	if g.gate.CompareAndSwap(true, false) {
		g.read <- struct{}{}
		<-g.release
	}
	return values, err
}

// TestDeleteDuringLoad: a load reads the old value, the row changes and
// Delete runs while the load is in flight; once Delete has returned, no
// Get in this process sees the old value, from memory or anywhere.
func TestDeleteDuringLoad(t *testing.T) {
	t.Parallel()
	src := newSource(t, 10)
	gl := &gatedLoader{inner: src.loader, read: make(chan struct{}), release: make(chan struct{})}
	c := newChain(t, testenv.Memcached(t), gl, nil, time.Minute)
	ctx := context.Background()

	gl.gate.Store(true)
	early := make(chan string)
	go func() {
		v, err := c.cache.Get(ctx, "3")
		if err != nil {
			t.Error(err)
		}
		early <- string(v)
	}()
	<-gl.read // the load has read v0
	src.update(t, "3", "v1")
	if err := c.cache.Delete(ctx, "3"); err != nil {
		t.Fatal(err)
	}
	close(gl.release)
	if v := <-early; v != "v0" {
		t.Fatalf("the Get that began before the update = %q, want v0", v)
	}
	for range 3 {
		if v, err := c.cache.Get(ctx, "3"); err != nil || string(v) != "v1" {
			t.Fatalf("Get after Delete = %q, %v; want v1", v, err)
		}
	}
	if e, err := c.mem.Get(ctx, "3"); err == nil && string(e.Value) != "v1" {
		t.Fatalf("memory holds %q after the Delete, want v1 or nothing", e.Value)
	}
}

// TestDeleteNeverFollowedByOldValue runs readers against a writer that
// updates rows and deletes them from the cache: a Get that begins after a
// Delete returned never sees a version older than the one that Delete
// announced.
func TestDeleteNeverFollowedByOldValue(t *testing.T) {
	t.Parallel()
	const keys = 4
	src := newSource(t, keys)
	c := newChain(t, testenv.Memcached(t), src.loader, nil, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var announced [keys + 1]atomic.Int64 // version each key's last Delete announced
	var wg sync.WaitGroup
	var gets atomic.Int64
	for r := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				k := 1 + (i+r)%keys
				floor := announced[k].Load()
				v, err := c.cache.Get(ctx, strconv.Itoa(k))
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("Get(%d): %v", k, err)
					}
					return
				}
				gets.Add(1)
				if got, _ := strconv.ParseInt(strings.TrimPrefix(string(v), "v"), 10, 64); got < floor {
					t.Errorf("Get(%d) = v%d after the Delete of v%d returned", k, got, floor)
					cancel()
				}
			}
		}()
	}
	for version := int64(1); version <= 200 && ctx.Err() == nil; version++ {
		k := 1 + int(version)%keys
		src.update(t, strconv.Itoa(k), fmt.Sprintf("v%d", version))
		if err := c.cache.Delete(ctx, strconv.Itoa(k)); err != nil {
			t.Fatal(err)
		}
		announced[k].Store(version)
	}
	cancel()
	wg.Wait()
	if gets.Load() == 0 {
		t.Fatal("no Get completed")
	}
}

// TestOtherProcessCopy: two chains, each with a memory tier of its own,
// share memcached, as two processes do. A Delete in one clears its own
// memory and memcached, but not the other's memory, which serves its old
// copy until its memory TTL has passed, and the new value from then on.
func TestOtherProcessCopy(t *testing.T) {
	t.Parallel()
	src := newSource(t, 10)
	srv := testenv.Memcached(t)
	clk := clocktest.New(time.Now())
	const memTTL = 2 * time.Second
	a := newChain(t, srv, src.loader, clk, memTTL)
	b := newChain(t, srv, src.loader, clk, memTTL)
	ctx := context.Background()
	get := func(c *chain) string {
		t.Helper()
		v, err := c.cache.Get(ctx, "5")
		if err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	if get(a) != "v0" || get(b) != "v0" {
		t.Fatal("the first reads did not return v0")
	}
	waitForMemory(t, a.mem, "5")
	waitForMemory(t, b.mem, "5")
	clk.Advance(memTTL / 2) // b's copy is half its memory TTL old
	src.update(t, "5", "v1")
	if err := a.cache.Delete(ctx, "5"); err != nil {
		t.Fatal(err)
	}
	if v := get(a); v != "v1" {
		t.Fatalf("the deleting process reads %q, want v1", v)
	}
	if v := get(b); v != "v0" {
		t.Fatalf("the other process reads %q before its memory TTL passed; want its old copy v0 (if this changed, update docs/consistency.md)", v)
	}
	clk.Advance(memTTL/2 - time.Millisecond)
	if v := get(b); v != "v0" {
		t.Fatalf("the other process reads %q just before its memory TTL; want v0", v)
	}
	clk.Advance(time.Millisecond) // memTTL after b stored its copy
	if v := get(b); v != "v1" {
		t.Fatalf("the other process reads %q once its memory TTL passed; want v1", v)
	}
}

// TestNegativeEntriesInMemory: a key the source lacks is remembered in
// memory, and a Set in this process replaces that at once.
func TestNegativeEntriesInMemory(t *testing.T) {
	t.Parallel()
	src := newSource(t, 1)
	c := newChain(t, testenv.Memcached(t), src.loader, nil, time.Minute, tier.WithNegativeTTL(time.Minute))
	ctx := context.Background()
	if _, err := c.cache.Get(ctx, "absent"); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("Get of an absent key: %v, want ErrNotFound", err)
	}
	waitForMemory(t, c.mem, "absent")
	if e, err := c.mem.Get(ctx, "absent"); err != nil || !e.Negative {
		t.Fatalf("memory holds %+v, %v; want a negative entry", e, err)
	}
	before := src.db.Selects(t)
	for range 3 {
		if _, err := c.cache.Get(ctx, "absent"); !errors.Is(err, tier.ErrNotFound) {
			t.Fatalf("Get of an absent key: %v, want ErrNotFound", err)
		}
	}
	if n := src.db.Selects(t) - before; n != 0 {
		t.Fatalf("three more Gets of an absent key: %d SELECTs, want none", n)
	}
	if err := c.cache.Set(ctx, "absent", []byte("now")); err != nil {
		t.Fatal(err)
	}
	if v, err := c.cache.Get(ctx, "absent"); err != nil || string(v) != "now" {
		t.Fatalf("Get after Set = %q, %v", v, err)
	}
}

// slowLoader is the source as a clock sees it: each Load takes took.
type slowLoader struct {
	inner tier.Loader
	clk   *clocktest.Clock
	took  time.Duration
}

func (s *slowLoader) Load(ctx context.Context, keys []string) (map[string][]byte, error) {
	s.clk.Advance(s.took)
	return s.inner.Load(ctx, keys)
}

// TestEarlyRefreshFromMemory: with memory on top, hits on a hot key close
// to the expiry of memcached's copy reload it before it expires (the
// memory copy carries that expiry), and its readers never miss: past the
// old expiry the key is still answered from memory.
func TestEarlyRefreshFromMemory(t *testing.T) {
	t.Parallel()
	src := newSource(t, 10)
	clk := clocktest.New(time.Now())
	const ttl = 10 * time.Minute
	c := newChain(t, testenv.Memcached(t), &slowLoader{inner: src.loader, clk: clk, took: 100 * time.Millisecond}, clk, ttl,
		tier.WithEarlyRefresh(100))
	ctx := context.Background()
	if v, err := c.cache.Get(ctx, "8"); err != nil || string(v) != "v0" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	waitForMemory(t, c.mem, "8")
	first, _ := c.mem.Get(ctx, "8")
	if !first.Expires.After(clk.Now().Add(ttl - time.Second)) {
		t.Fatalf("the copy in memory expires at %v, want memcached's, about %v from now", first.Expires, ttl)
	}
	src.update(t, "8", "v1")
	clk.Advance(first.Expires.Sub(clk.Now()) - 50*time.Millisecond) // just before it expires
	deadline := time.Now().Add(30 * time.Second)                    // generous: a busy machine must not fail the test
	for c.cache.Stats().Refresh.Done == 0 {
		if _, err := c.cache.Get(ctx, "8"); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no hit near the expiry started an early refresh")
		}
	}
	for { // the refresh may write the tiers after it has answered
		if e, err := c.mem.Get(ctx, "8"); err == nil && e.Expires.After(first.Expires) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the refreshed value never reached memory")
		}
		time.Sleep(time.Millisecond)
	}
	clk.Advance(time.Second) // past the first copy's expiry
	before := src.db.Selects(t)
	if v, err := c.cache.Get(ctx, "8"); err != nil || string(v) != "v1" {
		t.Fatalf("Get past the old expiry = %q, %v; want the refreshed v1", v, err)
	}
	if n := src.db.Selects(t) - before; n != 0 {
		t.Fatalf("the key expired for its readers: %d SELECTs past the old expiry", n)
	}
}
