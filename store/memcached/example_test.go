package memcached_test

import (
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/tiercache/tiercache/store/memcached"
)

// New parses nutcracker.yml-style server strings and resolves them; it
// does not connect, so a node that is down surfaces later as
// ErrUnavailable from the operations, which the chain treats as a miss.
func ExampleNew() {
	mc, err := memcached.New([]string{"127.0.0.1:11211:1", "127.0.0.1:11212:2 cache-b"},
		memcached.WithTimeout(100*time.Millisecond),
		memcached.WithKeyPrefix("app1:"),
		// Place keys as a nutcracker pool with these settings does.
		memcached.WithHash("fnv1a_64"),
		memcached.WithDistribution("ketama"),
		memcached.WithHashTag("{}"))
	if err != nil {
		log.Fatal(err)
	}
	defer mc.Close()
	for _, s := range mc.Servers() {
		fmt.Println(s.Addr, s.Weight, s.PlacementName())
	}

	// A name twemproxy does not know is refused.
	_, err = memcached.New([]string{"127.0.0.1:11211:1"}, memcached.WithDistribution("rendezvous"))
	fmt.Println(errors.Is(err, memcached.ErrInvalidOption))
	// Output:
	// 127.0.0.1:11211 1 127.0.0.1
	// 127.0.0.1:11212 2 cache-b
	// true
}

func ExampleParseServer() {
	for _, s := range []string{"10.0.0.2:11211:2 cache-b", "[::1]:11211", "10.0.0.3"} {
		srv, err := memcached.ParseServer(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("addr=%s weight=%d name=%q\n", srv.Addr, srv.Weight, srv.Name)
	}
	// Output:
	// addr=10.0.0.2:11211 weight=2 name="cache-b"
	// addr=[::1]:11211 weight=1 name=""
	// memcached: bad server "10.0.0.3": missing port
}
