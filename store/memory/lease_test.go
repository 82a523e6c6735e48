package memory_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/clocktest"
	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
)

// leasedChain is newChain with tier.WithLeases: memory on top, memcached,
// which holds the leases, below it.
func leasedChain(t *testing.T, srv *testenv.MemcachedServer, src tier.Loader, clk tier.Clock, memTTL time.Duration) *chain {
	t.Helper()
	probe, err := tier.New(src, tier.WithTier(newMemoryOnly(t), time.Minute), tier.WithLeases())
	switch {
	case err == nil:
		probe.Close()
	case strings.Contains(err.Error(), "cannot lease"):
		t.Skip("this chain asks the top tier for leases; these tests need WithLeases to find memcached below the memory tier")
	}
	return newChain(t, srv, src, clk, memTTL, tier.WithLeases())
}

// TestLeaseStampedeAcrossChains: two chains (two processes) with memory on
// top and leases in memcached; 100 callers in each Get one cold key at
// once: one SELECT at the server in all.
func TestLeaseStampedeAcrossChains(t *testing.T) {
	t.Parallel()
	src := newSource(t, 10)
	srv := testenv.Memcached(t)
	chains := []*chain{leasedChain(t, srv, src.loader, nil, time.Minute), leasedChain(t, srv, src.loader, nil, time.Minute)}
	ctx := context.Background()
	before := src.db.Selects(t)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, c := range chains {
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if v, err := c.cache.Get(ctx, "4"); err != nil || string(v) != "v0" {
					t.Errorf("Get = %q, %v", v, err)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	if n := src.db.Selects(t) - before; n != 1 {
		t.Fatalf("200 callers in two chains: %d SELECTs at the server, want 1", n)
	}
}

// TestLeaseDeleteWithMemory: with leases, a Delete in one chain is seen at
// once by that chain, and by the other once its memory TTL has passed,
// even when the other had a load in flight that read the old value.
func TestLeaseDeleteWithMemory(t *testing.T) {
	t.Parallel()
	src := newSource(t, 10)
	srv := testenv.Memcached(t)
	clk := clocktest.New(time.Now())
	const memTTL = 2 * time.Second
	gl := &gatedLoader{inner: src.loader, read: make(chan struct{}), release: make(chan struct{})}
	a := leasedChain(t, srv, gl, clk, memTTL)
	b := leasedChain(t, srv, src.loader, clk, memTTL)
	ctx := context.Background()

	gl.gate.Store(true)
	early := make(chan string)
	go func() {
		v, err := a.cache.Get(ctx, "6")
		if err != nil {
			t.Error(err)
		}
		early <- string(v)
	}()
	<-gl.read // a's load has read v0
	src.update(t, "6", "v1")
	if err := b.cache.Delete(ctx, "6"); err != nil {
		t.Fatal(err)
	}
	close(gl.release)
	if v := <-early; v != "v0" {
		t.Fatalf("a's Get that began before the update = %q, want v0", v)
	}
	if v, err := b.cache.Get(ctx, "6"); err != nil || string(v) != "v1" {
		t.Fatalf("b after its Delete = %q, %v; want v1", v, err)
	}
	if e, err := a.mem.Get(ctx, "6"); err == nil {
		t.Logf("a's memory kept the value its refused load read: %q (allowed for its memory TTL)", e.Value)
	}
	clk.Advance(memTTL)
	if v, err := a.cache.Get(ctx, "6"); err != nil || string(v) != "v1" {
		t.Fatalf("a once its memory TTL passed = %q, %v; want v1", v, err)
	}
}
