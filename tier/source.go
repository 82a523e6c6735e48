package tier

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Protecting the source.
//
// The chain never sends the source more than it was sized for. At most
// WithLoadConcurrency Load calls run at once; a flight that finds them all
// busy waits for one to end, for at most the load timeout, and is then
// shed (ErrOverloaded, counted in Stats().Loader.Shed). A load runs on the
// flight's context, not a caller's: when every caller has left it keeps
// running, so that the next caller of the key joins it instead of sending
// the same statement again, until the load timeout (WithLoadTimeout)
// cancels it; the SQL loader then stops the statement at the server.
//
// When the source keeps failing, the breaker (WithBreaker) stops asking it:
// after a run of failed loads it fails every load at once (ErrSourceDown,
// or an expired copy where WithStaleIfError allows) for a cool-down, then
// lets one load through as a probe. The probe's success closes it; its
// failure starts another cool-down.

// Defaults of the source's protection.
const (
	DefaultLoadConcurrency = 8
	DefaultLoadTimeout     = 10 * time.Second
	DefaultBreakerFailures = 5
	DefaultBreakerCoolDown = 500 * time.Millisecond
)

// WithLoadConcurrency bounds the Load calls running at once (SQL
// statements, with the SQL loader), across every key. Default
// DefaultLoadConcurrency.
func WithLoadConcurrency(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("tier: WithLoadConcurrency: %d, want at least 1", n)
		}
		c.loadMax = n
		return nil
	}
}

// WithLoadTimeout bounds how long one Load call may wait for its turn and
// run. A load outlives the callers that wanted it (the next caller joins
// it) but not this. Default DefaultLoadTimeout.
func WithLoadTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("tier: WithLoadTimeout: %v, want a positive duration", d)
		}
		c.loadTimeout = d
		return nil
	}
}

// WithBreaker sets when the chain stops asking a failing source: after
// failures Load calls in a row have failed, for coolDown, after which one
// load probes the source. failures 0 turns the breaker off. Default
// DefaultBreakerFailures and DefaultBreakerCoolDown.
func WithBreaker(failures int, coolDown time.Duration) Option {
	return func(c *config) error {
		if failures < 0 || coolDown <= 0 {
			return fmt.Errorf("tier: WithBreaker(%d, %v): want 0 or more failures and a positive cool-down", failures, coolDown)
		}
		c.breakerFailures, c.breakerCoolDown = failures, coolDown
		return nil
	}
}

// callLoader runs one Load call, within the bound on concurrent loads, the
// load timeout and the breaker, and counts it.
func (c *Cache) callLoader(ctx context.Context, keys []string) (map[string][]byte, error) {
	if !c.breaker.allow(c.clock.Now()) {
		c.ctr.loadRejected.Add(1)
		return nil, ErrSourceDown
	}
	ctx, cancel := context.WithTimeout(ctx, c.loadTimeout)
	defer cancel()
	select {
	case c.loadSlots <- struct{}{}:
	default:
		c.ctr.loadWaits.Add(1)
		select {
		case c.loadSlots <- struct{}{}:
		case <-ctx.Done():
			c.ctr.loadShed.Add(1)
			c.breaker.abandon()
			return nil, fmt.Errorf("%w: %d loads running: %w", ErrOverloaded, cap(c.loadSlots), ctx.Err())
		}
	}
	defer func() { <-c.loadSlots }()
	c.ctr.statements.Add(1)
	c.ctr.loadKeys.Add(int64(len(keys)))
	values, err := c.loader.Load(ctx, keys)
	if c.breaker.record(err == nil, c.clock.Now()) {
		c.ctr.breakerTrips.Add(1)
	}
	if err != nil {
		c.ctr.loadErrors.Add(1)
		return nil, err
	}
	n := 0
	for _, k := range keys {
		if _, ok := values[k]; ok {
			n++
		}
	}
	c.ctr.loaded.Add(int64(n))
	c.ctr.notFound.Add(int64(len(keys) - n))
	return values, nil
}

// breaker counts failed loads in a row and, past a limit, fails loads at
// once for a cool-down, then lets one probe through. The zero value never
// opens; it is safe for concurrent use.
type breaker struct {
	limit    int
	coolDown time.Duration

	mu       sync.Mutex
	failures int       // failed loads in a row
	openAt   time.Time // when the current cool-down began; zero: closed
	probing  bool      // a probe is out
}

// allow reports whether a load may go to the source at now.
func (b *breaker) allow(now time.Time) bool {
	if b.limit == 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.openAt.IsZero():
		return true
	case b.probing || now.Sub(b.openAt) < b.coolDown:
		return false
	default:
		b.probing = true
		return true
	}
}

// record notes the outcome of a load allow let through, and reports
// whether it opened the breaker.
func (b *breaker) record(ok bool, now time.Time) (opened bool) {
	if b.limit == 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	wasProbe := b.probing
	b.probing = false
	if ok {
		b.failures, b.openAt = 0, time.Time{}
		return false
	}
	b.failures++
	if wasProbe || (b.openAt.IsZero() && b.failures >= b.limit) {
		opened = b.openAt.IsZero()
		b.openAt = now
	}
	return opened
}

// abandon notes that a load allow let through never reached the source:
// a probe that did not run lets the next load probe.
func (b *breaker) abandon() {
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}
