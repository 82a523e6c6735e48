package tiercache_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/internal/testenv"
)

// TestMemorySection builds a chain with memory on top of memcached from a
// file and checks that the second Get is answered from memory, that the
// memory tier's counters reach the stats and metrics, and that the memory
// tier's entries carry memcached's expiry.
func TestMemorySection(t *testing.T) {
	t.Parallel()
	mc := testenv.Memcached(t)
	db := kvDatabase(t, "('a', 'alpha')")
	path := writeConfig(t, fmt.Sprintf(`memory:
  max_bytes: 1MiB
  ttl: 1m
memcached:
  servers: ["%s:1"]
  ttl: 10m
source:
  dsn: %q
  query: SELECT k, v FROM kv WHERE k IN (?)
`, mc.Addr, db.DSN))
	chain, err := tiercache.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	ctx := context.Background()
	get := func() {
		t.Helper()
		if v, err := chain.Cache.Get(ctx, "a"); err != nil || string(v) != "alpha" {
			t.Fatalf("Get = %q, %v", v, err)
		}
	}
	get()
	// The chain may fill its tiers after it has answered.
	testenv.WaitFor(t, "the fills", func() bool { return chain.Cache.Stats().Fills.Pending == 0 })
	if chain.Memory.Len() == 0 {
		t.Fatal("the memory tier never received the value")
	}
	get()
	s := chain.Cache.Stats()
	if len(s.Tiers) != 2 || s.Tiers[0].Name != "memory" || s.Tiers[1].Name != "memcached" {
		t.Fatalf("tiers: %+v", s.Tiers)
	}
	if s.Tiers[0].Hits != 1 || s.Tiers[1].Hits != 0 || s.Loader.Statements != 1 { // the second Get from memory
		t.Fatalf("want the second Get from memory: memory %+v, memcached %+v, %d statements", s.Tiers[0], s.Tiers[1], s.Loader.Statements)
	}
	if c := s.Tiers[0].Counters; c["hits"] != 1 || c["entries"] != 1 || c["bytes"] <= 0 {
		t.Fatalf("memory counters: %v", c)
	}
	mem, err := chain.Memory.Get(ctx, "a") // a second memory hit
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(mem.Expires); left < 9*time.Minute || left > 10*time.Minute {
		t.Fatalf("the copy in memory expires in %v, want memcached's 10m", left)
	}
	rec := httptest.NewRecorder()
	chain.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`tiercache_store_bytes{tier="memory"}`, `tiercache_tier_hits_total{tier="memory"} 1`,
		`tiercache_tier_duration_seconds_count{op="get",result="hit",tier="memory"} 1`} {
		if !bytes.Contains(rec.Body.Bytes(), []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
