package testenv

import (
	"fmt"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// Settings for correctness tests against real servers. The production
// defaults (a memcached timeout of 200 ms, a node ejected after 2
// failures) are right for a service and wrong for a test on a loaded
// two-core machine, where a healthy loopback server can take longer than
// that to be scheduled: the test would then check what a timeout does
// instead of what it meant to. Tests about faults (timeouts, ejection)
// set their own, short values instead.
const (
	// Timeout bounds one network step of a client in a correctness test.
	Timeout = 10 * time.Second
	// FailureLimit is how many consecutive failures eject a node in a
	// correctness test: in effect never.
	FailureLimit = 1000
)

// waitLimit bounds WaitFor, and startTimeout the start of a memcached or a
// nutcracker. Both only guard against a hang, so they are long.
const (
	waitLimit    = time.Minute
	startTimeout = time.Minute
)

// MemcachedYAML returns the settings of a tiercache.yml memcached section
// that make it Timeout and FailureLimit, indented to sit under
// "memcached:".
func MemcachedYAML() string {
	return fmt.Sprintf("  timeout: %d\n  failure_limit: %d\n", Timeout.Milliseconds(), FailureLimit)
}

// WaitFor polls cond until it holds, and fails the test with what after
// a minute. It stands in for a signal where the code under test
// offers none to wait on (a counter of a background goroutine, a log
// line); a test never sleeps to let something happen.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	pause := time.Millisecond
	for deadline := time.Now().Add(waitLimit); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", waitLimit, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// RawClient returns a gomemcache client of addr with Timeout, for tests
// that look at a server directly: gomemcache's own default of 500 ms is
// too short on a loaded machine.
func RawClient(addr string) *memcache.Client {
	c := memcache.New(addr)
	c.Timeout = Timeout
	return c
}
