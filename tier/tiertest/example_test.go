package tiertest_test

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// Example runs a two-tier chain with no server: the first Get loads from
// the source and fills both tiers, the second is answered by the top tier,
// and after the top tier loses the key the durable one answers and fills
// it again.
func Example() {
	top, disk := tiertest.MustNew("top"), tiertest.MustNew("disk")
	src := tier.LoaderFunc(func(_ context.Context, keys []string) (map[string][]byte, error) {
		fmt.Println("load", keys)
		return map[string][]byte{keys[0]: []byte("value of " + keys[0])}, nil
	})
	cache, err := tier.New(src, tier.WithTier(top, time.Minute), tier.WithTier(disk, time.Hour))
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	ctx := context.Background()
	// The chain fills the tiers after answering; settle waits for that.
	settle := func() {
		for cache.Stats().Fills.Pending > 0 {
			runtime.Gosched()
		}
	}

	v, _ := cache.Get(ctx, "42")
	fmt.Println(string(v))
	settle()
	v, _ = cache.Get(ctx, "42")
	fmt.Println(string(v))
	_ = top.Delete(ctx, "42") // the top tier restarted, say
	v, _ = cache.Get(ctx, "42")
	fmt.Println(string(v))
	settle()

	for _, t := range cache.Stats().Tiers {
		fmt.Printf("%s: %d hits, %d misses, %d backfills\n", t.Name, t.Hits, t.Misses, t.Backfills)
	}
	// Output:
	// load [42]
	// value of 42
	// value of 42
	// value of 42
	// top: 1 hits, 2 misses, 2 backfills
	// disk: 1 hits, 1 misses, 1 backfills
}
