package memory

import (
	"fmt"
	"math"
	"time"

	"github.com/tiercache/tiercache/tier"
)

const (
	// DefaultMaxBytes bounds what a Tier holds unless WithMaxBytes says
	// otherwise: keys, values and the bookkeeping of each entry.
	DefaultMaxBytes = 64 << 20

	// DefaultTTL is how long a Tier keeps an entry unless WithTTL says
	// otherwise. It is short on purpose: this tier is the one a Delete in
	// another process cannot reach, so its TTL is how stale a value this
	// process serves may be after another process changed it.
	DefaultTTL = time.Second

	// DefaultMaxItemSize is the largest value a Tier keeps unless
	// WithMaxItemSize says otherwise; memcached's default limit (-I 1m).
	DefaultMaxItemSize = 1 << 20

	// EntryOverhead is what one entry costs besides its key and value
	// (the entry itself, the cache's node and its slot in the hash table),
	// counted against WithMaxBytes.
	EntryOverhead = 160
)

// Option configures a Tier. An Option given an impossible value makes New
// return an error wrapping ErrInvalidOption.
type Option func(*config) error

type config struct {
	maxBytes    int64
	maxEntries  int
	maxItemSize int
	ttl         time.Duration
	grace       time.Duration
	clock       tier.Clock // nil: the system clock
	name        string
}

func defaultConfig() config {
	return config{
		maxBytes:    DefaultMaxBytes,
		maxItemSize: DefaultMaxItemSize,
		ttl:         DefaultTTL,
		name:        "memory",
	}
}

// WithMaxBytes bounds the bytes the tier holds: keys, values and
// EntryOverhead per entry. When it is reached, the entries least likely to
// be used again are evicted (W-TinyLFU). Default DefaultMaxBytes.
func WithMaxBytes(n int64) Option {
	return func(c *config) error {
		if n < EntryOverhead {
			return fmt.Errorf("%w: max bytes %d, want at least %d", ErrInvalidOption, n, EntryOverhead)
		}
		c.maxBytes = n
		return nil
	}
}

// WithMaxEntries also bounds the number of entries; 0, the default, bounds
// bytes only. With both bounds every entry counts as at least
// max bytes / max entries, so neither bound can be passed, and a tier of
// small entries fills up on the entry bound first.
func WithMaxEntries(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("%w: max entries %d, want 0 (no bound) or more", ErrInvalidOption, n)
		}
		c.maxEntries = n
		return nil
	}
}

// WithTTL sets the longest time the tier keeps an entry, whatever expiry
// the entry carries: an entry lives until its own expiry or for d after it
// was stored, whichever comes first. It bounds how stale a value served
// from this process may be after another process invalidated it
// (docs/consistency.md). Default DefaultTTL.
func WithTTL(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: TTL %v, want a positive duration", ErrInvalidOption, d)
		}
		c.ttl = d
		return nil
	}
}

// WithGrace keeps entries up to d past their expiry (still within the TTL
// of WithTTL), so that the chain's stale-while-revalidate can answer from
// memory: give it the chain's grace. The tier returns such entries with
// their expiry unchanged; the chain decides whether to serve them.
// Default 0: an entry is dropped when it expires.
func WithGrace(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: grace %v, want 0 or more", ErrInvalidOption, d)
		}
		c.grace = d
		return nil
	}
}

// WithMaxItemSize sets the largest value the tier keeps; Set and Add of a
// larger one return an error wrapping tier.ErrTooLarge (and Set drops the
// key's old value). It is also capped by WithMaxBytes. Default
// DefaultMaxItemSize.
func WithMaxItemSize(n int) Option {
	return func(c *config) error {
		if n < 1 || n > math.MaxUint32-EntryOverhead {
			return fmt.Errorf("%w: max item size %d, want 1 to %d", ErrInvalidOption, n, math.MaxUint32-EntryOverhead)
		}
		c.maxItemSize = n
		return nil
	}
}

// WithClock sets the clock that decides when entries expire. Tests use it
// to move time without sleeping. Default: the system clock.
func WithClock(clk tier.Clock) Option {
	return func(c *config) error {
		if clk == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		c.clock = clk
		return nil
	}
}

// WithName sets the name the tier goes by in the chain's stats and
// metrics. Default "memory".
func WithName(name string) Option {
	return func(c *config) error {
		if name == "" {
			return fmt.Errorf("%w: empty name", ErrInvalidOption)
		}
		c.name = name
		return nil
	}
}
