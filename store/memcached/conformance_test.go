package memcached_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// TestConformance runs the contract every tier keeps against a real
// memcached, each case under a key prefix of its own. memcached does not
// keep an entry stored already expired, and refuses items over its item
// size (1 MiB by default), which the Tier knows.
func TestConformance(t *testing.T) {
	t.Parallel()
	mc := testenv.Memcached(t)
	var cases atomic.Int64
	tiertest.Suite{
		New: func(t *testing.T) tier.Tier {
			tr, err := memcached.New([]string{mc.Addr},
				memcached.WithKeyPrefix(fmt.Sprintf("case%d:", cases.Add(1))),
				memcached.WithTimeout(testenv.Timeout), memcached.WithFailureLimit(testenv.FailureLimit))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tr.Close() })
			return tr
		},
		MaxValue:     memcached.DefaultMaxItemSize,
		DropsExpired: true,
	}.Run(t)
}
