package memory_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tiercache/tiercache/store/memory"
	"github.com/tiercache/tiercache/tier"
)

// A memory tier on top of a chain: the second Get does not reach the
// source.
func Example() {
	mem, err := memory.New(memory.WithMaxBytes(32<<20), memory.WithTTL(time.Second))
	if err != nil {
		panic(err)
	}
	loads := 0
	src := tier.LoaderFunc(func(_ context.Context, keys []string) (map[string][]byte, error) {
		loads++
		return map[string][]byte{keys[0]: []byte("body of " + keys[0])}, nil
	})
	cache, err := tier.New(src, tier.WithTier(mem, 10*time.Minute))
	if err != nil {
		panic(err)
	}
	defer cache.Close()

	ctx := context.Background()
	for range 2 {
		v, _ := cache.Get(ctx, "42")
		fmt.Println(string(v))
	}
	fmt.Println("loads:", loads)
	// Output:
	// body of 42
	// body of 42
	// loads: 1
}
