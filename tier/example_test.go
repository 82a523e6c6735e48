package tier_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// Any Loader works as the source of truth; here, a map.
func ExampleNew() {
	rows := map[string][]byte{"42": []byte("the answer")}
	src := tier.LoaderFunc(func(ctx context.Context, keys []string) (map[string][]byte, error) {
		out := make(map[string][]byte)
		for _, k := range keys {
			if v, ok := rows[k]; ok {
				out[k] = v
			}
		}
		return out, nil
	})
	cache, err := tier.New(src, tier.WithNegativeTTL(30*time.Second))
	if err != nil {
		panic(err)
	}
	defer cache.Close()

	v, err := cache.Get(context.Background(), "42")
	fmt.Printf("%s %v\n", v, err)
	_, err = cache.Get(context.Background(), "7")
	fmt.Println(errors.Is(err, tier.ErrNotFound))
	// Output:
	// the answer <nil>
	// true
}

func ExampleCache_GetMulti() {
	src := tier.LoaderFunc(func(ctx context.Context, keys []string) (map[string][]byte, error) {
		return map[string][]byte{"1": []byte("one"), "2": []byte("two")}, nil
	})
	cache, _ := tier.New(src)
	defer cache.Close()

	m, err := cache.GetMulti(context.Background(), []string{"1", "2", "3"})
	fmt.Println(len(m), string(m["1"]), string(m["2"]), err)
	// Output: 2 one two <nil>
}

func ExampleTyped() {
	type article struct {
		Title string `json:"title"`
	}
	src := tier.LoaderFunc(func(ctx context.Context, keys []string) (map[string][]byte, error) {
		return map[string][]byte{"1": []byte(`{"title":"Hello"}`)}, nil
	})
	cache, _ := tier.New(src)
	defer cache.Close()
	articles := tier.NewTyped[article](cache, tier.JSON[article]{})

	a, err := articles.Get(context.Background(), "1")
	fmt.Println(a.Title, err)
	// Output: Hello <nil>
}

// A chain of two tiers: the first Get loads from the source and fills
// both, bottom up; once the top tier loses the key, the one below answers
// and fills it again, without the source.
func ExampleWithTier() {
	top, disk := tiertest.MustNew("top"), tiertest.MustNew("disk")
	loads := 0
	src := tier.LoaderFunc(func(ctx context.Context, keys []string) (map[string][]byte, error) {
		loads++
		return map[string][]byte{keys[0]: []byte("the answer")}, nil
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
	_, _ = cache.Get(ctx, "42")
	settle()
	_ = top.Delete(ctx, "42") // the top tier restarted empty, say
	v, _ := cache.Get(ctx, "42")
	settle()
	_, inTop := top.Entry("42")
	fmt.Println(string(v), loads, inTop)
	// Output: the answer 1 true
}

// An Observer hears of every call the chain makes to a tier or to the
// loader; package metrics turns them into latency histograms.
func ExampleWithObserver() {
	src := tier.LoaderFunc(func(ctx context.Context, keys []string) (map[string][]byte, error) {
		return map[string][]byte{keys[0]: []byte("v")}, nil
	})
	cache, err := tier.New(src,
		tier.WithTier(tiertest.MustNew("top"), time.Minute),
		tier.WithTier(tiertest.MustNew("disk"), time.Hour),
		tier.WithObserver(tier.Observer{
			TierCall: func(c tier.TierCall) { fmt.Println(c.Tier, c.Op, c.Err == nil) },
			LoadCall: func(c tier.LoadCall) { fmt.Println("load", c.Keys, c.Found) },
		}))
	if err != nil {
		panic(err)
	}
	_, _ = cache.Get(context.Background(), "42")
	_ = cache.Close() // waits for the fills the chain makes after answering
	// Output:
	// top get false
	// disk get false
	// load 1 1
	// disk add true
	// top add true
}
