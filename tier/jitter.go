package tier

import (
	"fmt"
	"time"
)

// TTL jitter.
//
// Keys loaded together (a GetMulti, a warm-up burst, the first traffic
// after a deploy) would otherwise all expire together, and come back to
// the source together. With WithTTLJitter each freshly loaded or Set value
// gets every tier's TTL scaled by its own factor drawn uniformly from
// [1-f, 1+f], so their expiries spread over ±f of the TTL.

// WithTTLJitter spreads the expiry of fresh values over ±fraction of each
// tier's TTL (0.1 for ±10%). fraction must be in [0, 0.5]; 0, the default,
// turns jitter off. The marker TTL of WithLeases grows with it, so that
// markers still outlive the durable copies they outdate.
func WithTTLJitter(fraction float64) Option {
	return func(c *config) error {
		if !(fraction >= 0 && fraction <= 0.5) {
			return fmt.Errorf("tier: WithTTLJitter: %v, want a fraction from 0 to 0.5", fraction)
		}
		c.jitter = fraction
		return nil
	}
}

// jitterFactor draws the factor for one key's TTLs: 0, meaning 1, when
// jitter is off.
func (c *Cache) jitterFactor() float64 {
	if c.jitter == 0 {
		return 0
	}
	return 1 + c.jitter*(2*c.rand()-1)
}

// scaled is ttl times factor (0 is 1); 0, never expiring, stays 0.
func scaled(ttl time.Duration, factor float64) time.Duration {
	if factor == 0 || ttl <= 0 {
		return ttl
	}
	return max(time.Duration(float64(ttl)*factor), time.Millisecond)
}

// stretch is the longest ttl can become with jitter.
func (c *Cache) stretch(ttl time.Duration) time.Duration {
	return scaled(ttl, 1+c.jitter)
}
