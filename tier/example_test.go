package tier_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tiercache/tiercache/tier"
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
