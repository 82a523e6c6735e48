// Package clocktest provides a clock that tests move by hand, so that
// code deciding TTLs (tier, store/memcached, store/boltdb) is tested
// without sleeping.
package clocktest

import (
	"sync"
	"time"
)

// Clock satisfies tier.Clock and the stores' clock options. Its time
// stands still until Advance moves it. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a Clock showing now.
func New(now time.Time) *Clock { return &Clock{now: now} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (back, for a negative d).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
