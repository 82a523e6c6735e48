package memcached_test

import (
	"fmt"
	"time"

	"github.com/tiercache/tiercache/store/memcached"
)

// A node that fails twice in a row is marked down for 30 seconds, and its
// keys are misses answered by the tier below; with auto-eject they move to
// the other nodes instead, stored there for 10 seconds at most.
func ExampleWithAutoEject() {
	mc, err := memcached.New([]string{"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"},
		memcached.WithFailureLimit(2), memcached.WithRetryTimeout(30*time.Second),
		memcached.WithAutoEject(true), memcached.WithEjectedTTLCap(10*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer mc.Close()
	for _, ns := range mc.NodeStats() {
		fmt.Println(ns.Name, ns.State)
	}
	// Output:
	// 10.0.0.1:11211 up
	// 10.0.0.2:11211 up
	// 10.0.0.3:11211 up
}
