package memcached_test

import (
	"log"

	"github.com/tiercache/tiercache/store/memcached"
)

// Leases through twemproxy: the tier is given nutcracker's listen address,
// and its leases are built on gets, add and cas. LeaseProtocolAuto, the
// default, would find that out by itself; naming the protocol saves the
// probe and says what the deployment expects.
func ExampleWithLeaseProtocol() {
	mc, err := memcached.New([]string{"127.0.0.1:22121"}, // nutcracker.yml: listen
		memcached.WithLeaseProtocol(memcached.LeaseProtocolClassic))
	if err != nil {
		log.Fatal(err)
	}
	defer mc.Close()
}
