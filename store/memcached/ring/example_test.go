package ring_test

import (
	"fmt"
	"log"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/store/memcached/ring"
)

// A ring configured like a nutcracker.yml pool answers which node holds a
// key, as an index into the nodes given.
func ExampleNew() {
	nodes := []ring.Node{
		{Addr: "10.0.0.1:11211", Weight: 1},
		{Addr: "10.0.0.2:11211", Weight: 1},
		{Addr: "10.0.0.3:11211", Weight: 2, Name: "cache-c"},
	}
	r, err := ring.New(nodes, ring.Config{Hash: "fnv1a_64", Distribution: "ketama", HashTag: "{}"})
	if err != nil {
		log.Fatal(err)
	}
	for _, key := range []string{"cart:bob", "session:9f3a", "user:{42}:name", "user:{42}:mail"} {
		fmt.Println(key, "->", nodes[r.Locate(key)].Addr)
	}
	// Output:
	// cart:bob -> 10.0.0.1:11211
	// session:9f3a -> 10.0.0.3:11211
	// user:{42}:name -> 10.0.0.2:11211
	// user:{42}:mail -> 10.0.0.2:11211
}

func ExamplePlacementName() {
	for _, n := range []ring.Node{
		{Addr: "10.0.0.1:11211"},
		{Addr: "10.0.0.1:22122"},
		{Addr: "10.0.0.1:11211", Name: "cache-a"},
	} {
		fmt.Println(ring.PlacementName(n))
	}
	// Output:
	// 10.0.0.1
	// 10.0.0.1:22122
	// cache-a
}

// A Selector gives gomemcache twemproxy's placement.
func ExampleNewSelector() {
	r, err := ring.New([]ring.Node{
		{Addr: "127.0.0.1:11211", Weight: 1},
		{Addr: "127.0.0.1:11212", Weight: 1},
	}, ring.Config{})
	if err != nil {
		log.Fatal(err)
	}
	sel, err := ring.NewSelector(r)
	if err != nil {
		log.Fatal(err)
	}
	client := memcache.NewFromSelector(sel)
	_ = client // client.Get, client.Set... go where twemproxy would send them.
	for _, key := range []string{"cart:bob", "profile:carol"} {
		addr, _ := sel.PickServer(key)
		fmt.Println(key, "->", addr)
	}
	// Output:
	// cart:bob -> 127.0.0.1:11212
	// profile:carol -> 127.0.0.1:11211
}
