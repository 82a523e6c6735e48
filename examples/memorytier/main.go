// Command memorytier puts a memory tier on top of memcached and shows what
// it changes: hot keys answered in-process, a Delete seen at once by the
// process that made it, and another process's copy gone after the memory
// tier's TTL.
//
// It needs a memcached at TIERCACHE_MEMCACHED (default 127.0.0.1:11211).
// The source of truth is a map standing in for the database; a real
// chain uses loader/sqlload.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/store/memory"
	"github.com/tiercache/tiercache/tier"
)

// database is the source of truth: one row per key.
type database struct {
	mu   sync.Mutex
	rows map[string]string
}

func (d *database) Load(_ context.Context, keys []string) (map[string][]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string][]byte)
	for _, k := range keys {
		if v, ok := d.rows[k]; ok {
			out[k] = []byte(v)
		}
	}
	return out, nil
}

func (d *database) update(key, value string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rows[key] = value
}

// process builds one application process's chain: its own memory tier,
// then the shared memcached.
func process(addr string, src tier.Loader, memTTL time.Duration) (*tier.Cache, *memory.Tier) {
	mem, err := memory.New(memory.WithMaxBytes(64<<20), memory.WithTTL(memTTL))
	if err != nil {
		log.Fatal(err)
	}
	mc, err := memcached.New([]string{addr}, memcached.WithKeyPrefix(fmt.Sprintf("example:memorytier:%d:", os.Getpid())))
	if err != nil {
		log.Fatal(err)
	}
	// The memory tier gets memcached's TTL in the chain, so its copies
	// carry memcached's expiry; memory.WithTTL bounds how long it keeps
	// them.
	cache, err := tier.New(src, tier.WithTier(mem, 10*time.Minute), tier.WithTier(mc, 10*time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	return cache, mem
}

func main() {
	log.SetFlags(0)
	addr := os.Getenv("TIERCACHE_MEMCACHED")
	if addr == "" {
		addr = "127.0.0.1:11211"
	}
	ctx := context.Background()
	db := &database{rows: map[string]string{"42": "the answer, version 1"}}
	const memTTL = 500 * time.Millisecond
	a, memA := process(addr, db, memTTL)
	defer a.Close()
	b, _ := process(addr, db, memTTL)
	defer b.Close()

	get := func(name string, c *tier.Cache) {
		v, err := c.Get(ctx, "42")
		if err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		fmt.Printf("%s reads %q\n", name, v)
	}
	get("a", a)
	get("b", b)
	start := time.Now()
	for range 100000 {
		if _, err := a.Get(ctx, "42"); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("a: 100,000 more Gets in %v, %d answered from memory\n", time.Since(start).Round(time.Millisecond), memA.Counters()["hits"])

	db.update("42", "the answer, version 2")
	if err := a.Delete(ctx, "42"); err != nil {
		log.Fatal(err)
	}
	fmt.Println("a updated the row and deleted the key")
	get("a", a) // at once: a's memory was cleared by its own Delete
	get("b", b) // b's memory still holds version 1...
	time.Sleep(memTTL)
	get("b", b) // ...for at most its memory TTL
}
