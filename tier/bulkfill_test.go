package tier

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// multiFillTier is a leaseTier that fills in bulk, as the memcached tier
// does with the meta protocol.
type multiFillTier struct {
	*leaseTier
	multiCalls, multiKeys atomic.Int64
}

var _ MultiFiller = (*multiFillTier)(nil)

func (t *multiFillTier) FillMulti(ctx context.Context, fills []LeaseFill) []error {
	t.multiCalls.Add(1)
	t.multiKeys.Add(int64(len(fills)))
	errs := make([]error, len(fills))
	for i, f := range fills {
		errs[i] = t.Fill(ctx, f.Key, f.Lease, f.Write)
	}
	return errs
}

func keysAndRows(n int) ([]string, map[string]string) {
	rows := make(map[string]string)
	var keys []string
	for i := range n {
		k := fmt.Sprint("k", i)
		rows[k], keys = "v"+k, append(keys, k)
	}
	return keys, rows
}

// A batch of keys loaded under leases is filled with one FillMulti; a
// single key with Fill.
func TestLeaseFillsInBulk(t *testing.T) {
	t.Parallel()
	keys, rows := keysAndRows(50)
	w := newLeaseWorld(rows)
	top := &multiFillTier{leaseTier: w.top}
	c, err := New(w.src, WithTier(top, time.Minute), WithTier(newMemTier("disk"), time.Hour), WithClock(w.clock), WithLeases())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := c.GetMulti(context.Background(), keys)
	if err != nil || len(m) != 50 {
		t.Fatalf("GetMulti: %d values, %v", len(m), err)
	}
	filled(t, c)
	if calls, n := top.multiCalls.Load(), top.multiKeys.Load(); calls != 1 || n != 50 {
		t.Fatalf("%d FillMulti calls for %d keys, want 1 for 50", calls, n)
	}
}

// Without MultiFiller, each key is filled on its own.
func TestLeaseFillsOneByOne(t *testing.T) {
	t.Parallel()
	keys, rows := keysAndRows(20)
	w := newLeaseWorld(rows)
	p := w.proc(t, false, nil)
	if m, err := p.cache.GetMulti(context.Background(), keys); err != nil || len(m) != 20 {
		t.Fatalf("GetMulti: %d values, %v", len(m), err)
	}
	filled(t, p.cache)
	if n := w.top.fills.Load(); n != 20 {
		t.Fatalf("%d fills, want 20", n)
	}
}

// Plain backfills of a batch use the tier's AddBulk.
func TestBackfillAddsInBulk(t *testing.T) {
	t.Parallel()
	keys, rows := keysAndRows(30)
	top := newBulkTier()
	src := newMapLoader(rows)
	c, err := New(src, WithTier(top, time.Minute), WithTier(newMemTier("disk"), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m, err := c.GetMulti(context.Background(), keys); err != nil || len(m) != 30 {
		t.Fatalf("GetMulti: %d values, %v", len(m), err)
	}
	filled(t, c)
	if n, sent := top.bulkCalls.Load(), len(top.sent()); n != 1 || sent != 30 {
		t.Fatalf("%d AddBulk calls for %d keys, want 1 for 30", n, sent)
	}
	if st := c.Stats().Tiers[0]; st.Backfills != 30 {
		t.Fatalf("top backfills %d, want 30", st.Backfills)
	}
}

// The leasing tier need not be the top one: under an in-process memory
// tier, leases still make one load among processes, and invalidations
// clear the memory tier above and leave their marker in the leasing tier.
func TestLeasesBelowAMemoryTier(t *testing.T) {
	t.Parallel()
	w := newLeaseWorld(map[string]string{"k": "v1"})
	type process struct {
		cache *Cache
		mem   *memTier
	}
	procs := make([]process, 2)
	for i := range procs {
		mem := newMemTier("memory")
		c, err := New(w.src, WithTier(mem, time.Second), WithTier(w.top, time.Minute), WithTier(newMemTier("disk"), time.Hour),
			WithClock(w.clock), WithLeases())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.leaseAt != 1 {
			t.Fatalf("leasing tier at %d, want 1", c.leaseAt)
		}
		procs[i] = process{c, mem}
	}
	a, b := procs[0], procs[1]
	mustGetValue(t, a.cache, "k", "v1")
	mustGetValue(t, b.cache, "k", "v1")
	if n := w.src.calls.Load(); n != 1 {
		t.Fatalf("%d loads, want 1", n)
	}
	for i, p := range procs {
		if e, ok := p.mem.entry("k"); !ok || string(e.Value) != "v1" {
			t.Fatalf("process %d: memory tier %q, %v; want v1", i, e.Value, ok)
		}
	}
	if it, _ := w.top.item("k"); it.entry == nil || string(it.entry.Value) != "v1" {
		t.Fatalf("leasing tier %+v, want v1 filled through the lease", it)
	}
	w.src.put("k", "v2")
	if err := a.cache.Delete(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.mem.entry("k"); ok {
		t.Fatal("the memory tier above the leasing tier kept the key")
	}
	if it, _ := w.top.item("k"); it.entry != nil || it.marker.At.IsZero() {
		t.Fatalf("leasing tier %+v, want a marker and no value", it)
	}
	mustGetValue(t, a.cache, "k", "v2")
	if err := a.cache.Set(context.Background(), "k", []byte("v3")); err != nil {
		t.Fatal(err)
	}
	if e, _ := a.mem.entry("k"); string(e.Value) != "v3" {
		t.Fatalf("memory tier %q after Set, want v3", e.Value)
	}
	if it, _ := w.top.item("k"); it.entry == nil || string(it.entry.Value) != "v3" || it.marker.At.IsZero() {
		t.Fatalf("leasing tier %+v after Set, want v3 and a marker", it)
	}
}

func TestLeasesNeedALeasingTier(t *testing.T) {
	t.Parallel()
	_, err := New(newMapLoader(nil), WithTier(newMemTier("a"), time.Minute), WithTier(newMemTier("b"), time.Minute), WithLeases())
	if err == nil {
		t.Fatal("New with leases and no tier that can lease: no error")
	}
	if err.Error() != "tier: WithLeases: no tier can lease" {
		t.Fatalf("err = %v", err)
	}
}
