package e2e

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/clocktest"
	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/loader/sqlload"
	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
)

// Two processes in one test: two chains with leases, each with a bbolt
// file of its own, over one memcached and one database. Hooks in the
// loader force each interleaving.

type leaseProc struct {
	mcTier *memcached.Tier
	disk   *boltdb.Store
	loader *hookedLoader
	cache  *tier.Cache
}

// hookedLoader runs before before, and after after, each Load it passes on.
type hookedLoader struct {
	next          tier.Loader
	calls         atomic.Int64
	before, after atomic.Pointer[func(keys []string)]
}

func (l *hookedLoader) Load(ctx context.Context, keys []string) (map[string][]byte, error) {
	l.calls.Add(1)
	if h := l.before.Load(); h != nil {
		(*h)(keys)
	}
	values, err := l.next.Load(ctx, keys)
	if h := l.after.Load(); h != nil {
		(*h)(keys)
	}
	return values, err
}

// pauseOnce makes the first load that reaches the hook wait, after
// signalling reached, until resume is closed.
func pauseOnce(reached, resume chan struct{}) *func([]string) {
	var once sync.Once
	h := func([]string) { once.Do(func() { close(reached); <-resume }) }
	return &h
}

type leaseRig struct {
	mc *testenv.MemcachedServer
	db *testenv.Database
}

func newLeaseRig(t *testing.T) *leaseRig {
	t.Helper()
	r := &leaseRig{mc: testenv.Memcached(t), db: testenv.MySQL(t)}
	mustExec(t, r.db.DB, "CREATE TABLE articles (id INT NOT NULL PRIMARY KEY, body LONGBLOB NOT NULL)")
	insertRows(t, r.db.DB, 1, 20, 100)
	return r
}

func (r *leaseRig) proc(t *testing.T, opts ...tier.Option) *leaseProc {
	t.Helper()
	p := &leaseProc{mcTier: mustMemcached(t, r.mc.Addr)}
	var err error
	if p.disk, err = boltdb.Open(filepath.Join(t.TempDir(), "cache.db")); err != nil {
		t.Fatal(err)
	}
	src, err := sqlload.New(r.db.DB, "SELECT id, body FROM articles WHERE id IN (?)")
	if err != nil {
		t.Fatal(err)
	}
	p.loader = &hookedLoader{next: src}
	p.cache, err = tier.New(p.loader, append([]tier.Option{
		tier.WithTier(p.mcTier, 10*time.Minute),
		tier.WithTier(p.disk, 24*time.Hour),
		tier.WithLeases(),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cache.Close() })
	return p
}

func (r *leaseRig) update(t *testing.T, id, body string) {
	t.Helper()
	mustExec(t, r.db.DB, "UPDATE articles SET body = ? WHERE id = ?", body, id)
}

func getValue(t *testing.T, c *tier.Cache, key string) string {
	t.Helper()
	v, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	filled(t, c)
	return string(v)
}

// A loads v1 and pauses before it fills memcached; B updates the row and
// deletes the key; A's fill is refused, and the copy A left in its own
// bbolt file is never served.
func TestLeaseLateFillRefusedEndToEnd(t *testing.T) {
	t.Parallel()
	r := newLeaseRig(t)
	a, b := r.proc(t), r.proc(t)
	ctx := context.Background()
	old := string(value(2, 100))
	reached, resume := make(chan struct{}), make(chan struct{})
	a.loader.after.Store(pauseOnce(reached, resume))
	got := make(chan string)
	go func() {
		v, _ := a.cache.Get(ctx, "2")
		got <- string(v)
	}()
	<-reached
	r.update(t, "2", "v2")
	if err := b.cache.Delete(ctx, "2"); err != nil {
		t.Fatal(err)
	}
	close(resume)
	if v := <-got; v != old {
		t.Fatalf("the racing Get = %.20q, want the old row (it began before the Delete)", v)
	}
	filled(t, a.cache)
	if st := a.cache.Stats().Leases; st.Refused != 1 {
		t.Fatalf("lease stats %+v, want the fill refused", st)
	}
	if _, err := a.mcTier.Get(ctx, "2"); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("memcached after the refused fill: %v, want a miss (the marker)", err)
	}
	if err := a.disk.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if e, err := a.disk.Get(ctx, "2"); err != nil || string(e.Value) != old || e.Loaded.IsZero() {
		t.Fatalf("a's bbolt = %+v, %v; the test wants the late copy there, with its load time", e, err)
	}
	q0 := r.db.Selects(t)
	if v := getValue(t, a.cache, "2"); v != "v2" {
		t.Fatalf("a after the Delete = %.20q, want v2", v)
	}
	if v := getValue(t, b.cache, "2"); v != "v2" {
		t.Fatalf("b after the Delete = %.20q, want v2", v)
	}
	if n := r.db.Selects(t) - q0; n != 1 {
		t.Errorf("%d SELECTs, want 1", n)
	}
	if st := a.cache.Stats().Leases; st.Rejected != 1 {
		t.Errorf("a rejected %d durable copies, want 1", st.Rejected)
	}
}

// A durable copy loaded after the last invalidation is served once
// memcached's copy expires; one loaded before is not.
func TestLeaseDurableCopyAgainstMarkerEndToEnd(t *testing.T) {
	t.Parallel()
	r := newLeaseRig(t)
	clock := clocktest.New(time.Now())
	a, b := r.proc(t, tier.WithClock(clock)), r.proc(t, tier.WithClock(clock))
	ctx := context.Background()
	getValue(t, a.cache, "3") // a's copy of 3, from before the Delete
	clock.Advance(time.Minute)
	for _, id := range []string{"3", "4"} {
		r.update(t, id, "v2")
		if err := b.cache.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * tier.DefaultClockSkew)
	if v := getValue(t, a.cache, "4"); v != "v2" { // a's copy of 4, from after it
		t.Fatalf("Get 4 = %.20q", v)
	}
	clock.Advance(11 * time.Minute) // memcached's copies expire, bbolt's do not
	q0 := r.db.Selects(t)
	if v := getValue(t, a.cache, "4"); v != "v2" {
		t.Fatalf("Get 4 = %.20q", v)
	}
	if n := r.db.Selects(t) - q0; n != 0 {
		t.Errorf("a copy newer than the marker: %d SELECTs, want 0", n)
	}
	if v := getValue(t, a.cache, "3"); v != "v2" {
		t.Fatalf("Get 3 = %.20q, want v2: a's copy is older than the marker", v)
	}
	if n := r.db.Selects(t) - q0; n != 1 {
		t.Errorf("a copy older than the marker: %d SELECTs in all, want 1", n)
	}
	if v := getValue(t, b.cache, "4"); v != "v2" {
		t.Fatalf("b Get 4 = %.20q", v)
	}
}

// After another process's Delete, a warmup from this process's bbolt file
// cannot put the old value back into memcached.
func TestLeaseWarmupAfterDeleteEndToEnd(t *testing.T) {
	t.Parallel()
	r := newLeaseRig(t)
	a, b := r.proc(t), r.proc(t)
	ctx := context.Background()
	getValue(t, a.cache, "5")
	getValue(t, a.cache, "6")
	if err := a.disk.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r.update(t, "5", "v2")
	if err := b.cache.Delete(ctx, "5"); err != nil {
		t.Fatal(err)
	}
	r.mc.Restart() // and 6 is gone too, with every marker: warmup's case
	getValue(t, b.cache, "5")
	r.update(t, "5", "v3")
	if err := b.cache.Delete(ctx, "5"); err != nil {
		t.Fatal(err)
	}
	st, err := a.cache.Warmup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Written != 1 || st.Present != 1 {
		t.Errorf("warmup %+v, want 6 written and 5 found present (its marker)", st)
	}
	if _, err := a.mcTier.Get(ctx, "5"); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("memcached after the warmup: %v, want the marker (a miss)", err)
	}
	if v := getValue(t, a.cache, "5"); v != "v3" {
		t.Fatalf("Get 5 = %.20q, want v3", v)
	}
}

// B holds the leases of half the keys a GetMulti wants: A loads the other
// half in one statement and waits for B's fill of the rest. Keys B holds
// are misses to a plain Get, not garbage.
func TestLeaseGetMultiWaitsForHolderEndToEnd(t *testing.T) {
	t.Parallel()
	r := newLeaseRig(t)
	a, b := r.proc(t), r.proc(t)
	ctx := context.Background()
	reached, resume := make(chan struct{}), make(chan struct{})
	b.loader.before.Store(pauseOnce(reached, resume))
	held := []string{"11", "12", "13", "14", "15"}
	done := make(chan error)
	go func() {
		_, err := b.cache.GetMulti(ctx, held)
		done <- err
	}()
	<-reached // b holds the leases of 11..15
	for _, k := range held {
		if _, err := a.mcTier.Get(ctx, k); !errors.Is(err, tier.ErrMiss) {
			t.Fatalf("memcached Get of a leased key: %v, want a miss", err)
		}
	}
	if n := a.mcTier.Counters()["decode_errors"]; n != 0 {
		t.Fatalf("decode_errors = %d, want 0", n)
	}
	all := append([]string{"16", "17", "18", "19", "20"}, held...)
	q0 := r.db.Selects(t)
	result := make(chan map[string][]byte)
	go func() {
		m, err := a.cache.GetMulti(ctx, all)
		if err != nil {
			t.Error(err)
		}
		result <- m
	}()
	waitFor(t, "a waiting for b's leases", func() bool { return a.cache.Stats().Leases.Waits == 5 })
	close(resume)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m := <-result
	for _, k := range all {
		if !bytes.HasPrefix(m[k], []byte("row "+k+":")) {
			t.Errorf("%s = %.20q", k, m[k])
		}
	}
	if n := r.db.Selects(t) - q0; n != 2 {
		t.Errorf("%d SELECTs, want 2: a's half, and b's", n)
	}
	if st := a.cache.Stats().Leases; st.Won != 5 || st.WaitHits != 5 {
		t.Errorf("a's lease stats %+v, want 5 won and 5 answered by b's fill", st)
	}
}

// With memcached down, loads fall back to in-process singleflight, and a
// Delete reports that it could not leave its marker.
func TestLeaseMemcachedDownEndToEnd(t *testing.T) {
	t.Parallel()
	r := newLeaseRig(t)
	a := r.proc(t)
	ctx := context.Background()
	r.mc.Kill()
	if v := getValue(t, a.cache, "7"); !strings.HasPrefix(v, "row 7:") {
		t.Fatalf("Get = %.20q", v)
	}
	if st := a.cache.Stats().Leases; st.Fallbacks != 1 {
		t.Errorf("lease stats %+v, want one fallback", st.Fallbacks)
	}
	err := a.cache.Delete(ctx, "7")
	if err == nil || !errors.Is(err, memcached.ErrUnavailable) || !strings.Contains(err.Error(), "memcached") {
		t.Fatalf("Delete with memcached down: %v, want an error naming memcached", err)
	}
}
