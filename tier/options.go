package tier

import (
	"errors"
	"fmt"
	"time"
)

// Option configures a Cache. Options are applied in order; an invalid option
// makes New return an error.
type Option func(*config) error

type tierConfig struct {
	tier Tier
	ttl  time.Duration
	name string
}

type config struct {
	tiers       []tierConfig
	negativeTTL time.Duration
	loadBatch   int
	staleIfErr  time.Duration
	maxKeyLen   int
	clock       Clock
	backfillPar int
	autoWarmup  *warmupConfig // nil: off

	leases *leaseConfig  // nil: off (lease.go)
	beta   float64       // early refresh (refresh.go); 0: off
	grace  time.Duration // stale-while-revalidate (refresh.go); 0: off
	jitter float64       // TTL jitter (jitter.go); 0: off

	refreshMax int // background refreshes at once (refresh.go)

	// Protection of the source (source.go) and fills (fill.go).
	loadMax         int
	loadTimeout     time.Duration
	breakerFailures int
	breakerCoolDown time.Duration
	fillMax         int
}

// DefaultLoadBatch is the largest number of keys passed to one Loader.Load
// call unless WithLoadBatch says otherwise.
const DefaultLoadBatch = 500

// DefaultMaxKeyLen is the longest key the chain accepts unless
// WithMaxKeyLen says otherwise. It stays well under bbolt's 32 KiB key limit.
const DefaultMaxKeyLen = 16 << 10

func defaultConfig() config {
	return config{
		loadBatch:   DefaultLoadBatch,
		maxKeyLen:   DefaultMaxKeyLen,
		clock:       systemClock{},
		backfillPar: 16,
		refreshMax:  DefaultRefreshConcurrency,

		loadMax:         DefaultLoadConcurrency,
		loadTimeout:     DefaultLoadTimeout,
		breakerFailures: DefaultBreakerFailures,
		breakerCoolDown: DefaultBreakerCoolDown,
		fillMax:         DefaultFillConcurrency,
	}
}

// WithTier appends t to the chain. The first WithTier is the top tier (the
// one asked first). ttl is how long a value freshly loaded from the source
// lives in this tier, and the cap on the remaining TTL of a value backfilled
// into it; 0 means no cap (a fresh value never expires there).
func WithTier(t Tier, ttl time.Duration) Option {
	return func(c *config) error {
		if t == nil {
			return errors.New("tier: WithTier: nil tier")
		}
		if ttl < 0 {
			return fmt.Errorf("tier: WithTier: negative ttl %v", ttl)
		}
		name := fmt.Sprintf("tier%d", len(c.tiers))
		if n, ok := t.(interface{ Name() string }); ok && n.Name() != "" {
			name = n.Name()
		}
		for _, tc := range c.tiers {
			if tc.name == name {
				name = fmt.Sprintf("%s#%d", name, len(c.tiers))
			}
		}
		c.tiers = append(c.tiers, tierConfig{tier: t, ttl: ttl, name: name})
		return nil
	}
}

// WithNegativeTTL makes the chain remember, in every tier, that the source
// has no row for a key, for d. Repeated lookups of a missing row then stop at
// the top tier. 0 (the default) disables negative caching.
func WithNegativeTTL(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("tier: WithNegativeTTL: negative duration %v", d)
		}
		c.negativeTTL = d
		return nil
	}
}

// WithLoadBatch sets the largest number of keys passed to one Loader.Load
// call (one SQL statement with the SQL loader). Default DefaultLoadBatch.
func WithLoadBatch(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("tier: WithLoadBatch: %d, want at least 1", n)
		}
		c.loadBatch = n
		return nil
	}
}

// WithStaleIfError lets the chain answer with an expired copy found in a
// tier when the loader fails, as long as the copy expired no more than
// maxStale ago. Off by default: serving stale data must be a decision.
func WithStaleIfError(maxStale time.Duration) Option {
	return func(c *config) error {
		if maxStale <= 0 {
			return fmt.Errorf("tier: WithStaleIfError: %v, want a positive duration", maxStale)
		}
		c.staleIfErr = maxStale
		return nil
	}
}

// WithMaxKeyLen sets the longest key accepted; longer keys fail with
// ErrInvalidKey before any I/O. Default DefaultMaxKeyLen.
func WithMaxKeyLen(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("tier: WithMaxKeyLen: %d, want at least 1", n)
		}
		c.maxKeyLen = n
		return nil
	}
}

// WithBackfillConcurrency bounds how many tier writes one batch backfill
// runs at once (a GetMulti that loaded many keys). Default 16.
func WithBackfillConcurrency(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("tier: WithBackfillConcurrency: %d, want at least 1", n)
		}
		c.backfillPar = n
		return nil
	}
}

// WithClock sets the clock the chain uses to decide freshness and expiry.
// Tests use it to move time without sleeping.
func WithClock(clk Clock) Option {
	return func(c *config) error {
		if clk == nil {
			return errors.New("tier: WithClock: nil clock")
		}
		c.clock = clk
		return nil
	}
}

// WithFillConcurrency bounds the flights writing what they found into the
// tiers at once, after answering their callers. A flight beyond it waits
// for its turn; its keys stay joinable with their values meanwhile.
// Default DefaultFillConcurrency.
func WithFillConcurrency(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("tier: WithFillConcurrency: %d, want at least 1", n)
		}
		c.fillMax = n
		return nil
	}
}
