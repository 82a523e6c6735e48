package memcached_test

import (
	"context"
	"log"
	"time"

	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
)

// A chain whose processes share loads and invalidations through memcached:
// leases (one load per key among all processes, late fills refused,
// invalidation markers that outdate every process's older durable copies),
// early refresh, stale-while-revalidate and TTL jitter. Add the durable
// tier below memcached as usual; docs/consistency.md says what this
// guarantees.
func Example_leases() {
	mc, err := memcached.New([]string{"127.0.0.1:11211"})
	if err != nil {
		log.Fatal(err)
	}
	src := tier.LoaderFunc(func(ctx context.Context, keys []string) (map[string][]byte, error) {
		return map[string][]byte{}, nil // SELECT … WHERE id IN (…)
	})
	cache, err := tier.New(src,
		tier.WithTier(mc, 10*time.Minute),
		tier.WithLeases(
			tier.WithLeaseTTL(3*time.Second),  // above the slowest load
			tier.WithLeaseWait(5*time.Second), // then load without waiting any longer
			tier.WithClockSkew(time.Second)),  // how far apart the hosts' clocks may be
		tier.WithEarlyRefresh(1),
		tier.WithStaleWhileRevalidate(30*time.Second),
		tier.WithTTLJitter(0.1))
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
}
