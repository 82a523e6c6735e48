package memcached

import (
	"fmt"
	"slices"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/tier"
)

const (
	// DefaultTimeout bounds each network step of an operation: the dial,
	// the write, and the wait for a reply from the node's last progress. A memcached answers in well under a
	// millisecond on a LAN; 200ms leaves room for a loaded node and GC
	// pauses, yet a hung node costs each caller a fifth of a second before
	// the chain asks the tier below. gomemcache's own default is 500ms.
	DefaultTimeout = 200 * time.Millisecond

	// DefaultServerConnections is how many connections the Tier keeps to
	// each node, as twemproxy's server_connections (whose default is 1).
	// Requests are pipelined on them, so a couple carry thousands of
	// concurrent callers; a second one keeps a large reply (a multi-get, a
	// bulk batch) from holding up every other request to the node.
	DefaultServerConnections = 2

	// DefaultMaxItemSize is memcached's default item size limit (-I 1m).
	DefaultMaxItemSize = 1 << 20
)

// Bounds on WithMaxItemSize, memcached's own bounds on -I, and on
// WithServerConnections, memcached's default connection limit (-c).
const (
	minItemSize    = 1 << 10
	maxItemSize    = 1 << 30
	maxServerConns = 1024
)

// Option configures a Tier. An Option given an impossible value makes New
// return an error wrapping ErrInvalidOption.
type Option func(*config) error

type config struct {
	timeout      time.Duration
	serverConns  int
	maxItemSize  int
	keyPrefix    string
	hash         string
	distribution string
	hashTag      string // WithHashTag, in selector.go
	selector     memcache.ServerSelector
	clock        tier.Clock

	// Node health (health.go) and discovery (discovery.go).
	failureLimit  int32
	retryTimeout  time.Duration
	autoEject     bool
	ejectedTTLCap time.Duration
	discovery     *discoveryConfig

	restartInterval time.Duration // restart.go; 0 is off

	leaseProtocol LeaseProtocol // leaseproto.go

	// AddBulk's window (pipeline.go).
	bulkBatch  int
	bulkWindow int
}

func defaultConfig() config {
	return config{
		timeout:       DefaultTimeout,
		serverConns:   DefaultServerConnections,
		maxItemSize:   DefaultMaxItemSize,
		clock:         systemClock{},
		failureLimit:  DefaultFailureLimit,
		retryTimeout:  DefaultRetryTimeout,
		ejectedTTLCap: DefaultEjectedTTLCap,
		bulkBatch:     DefaultBulkBatch,
		bulkWindow:    DefaultBulkWindow,
		leaseProtocol: LeaseProtocolAuto,
	}
}

// WithTimeout sets the limit on each network step of an operation (see
// DefaultTimeout). d must be positive.
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v, must be positive", ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

// WithServerConnections sets how many connections the Tier opens to each
// node at most (see DefaultServerConnections), like twemproxy's
// server_connections. Every request to the node, from every caller, is
// pipelined on them; callers beyond what they carry wait with their own
// context, which is never counted against the node. n must be between 1
// and 1024.
func WithServerConnections(n int) Option {
	return func(c *config) error {
		if n < 1 || n > maxServerConns {
			return fmt.Errorf("%w: server connections %d, must be between 1 and %d", ErrInvalidOption, n, maxServerConns)
		}
		c.serverConns = n
		return nil
	}
}

// WithMaxItemSize tells the Tier the servers' item size limit, their -I
// setting (default 1 MiB). An entry that cannot fit is never sent: Set
// deletes the key and returns tier.ErrTooLarge, Add returns
// tier.ErrTooLarge. n must be between 1 KiB and 1 GiB, memcached's own
// bounds for -I.
func WithMaxItemSize(n int) Option {
	return func(c *config) error {
		if n < minItemSize || n > maxItemSize {
			return fmt.Errorf("%w: max item size %d, must be between %d and %d", ErrInvalidOption, n, minItemSize, maxItemSize)
		}
		c.maxItemSize = n
		return nil
	}
}

// WithKeyPrefix puts p before every key the Tier sends, so that several
// caches can share memcached nodes without their keys meeting. p must be
// at most 204 bytes of what memcached allows in a key (no spaces or control
// bytes), leaving room for a hashed key after it.
func WithKeyPrefix(p string) Option {
	return func(c *config) error {
		if len(p) > maxPrefixLen || !legalKeyBytes(p) {
			return fmt.Errorf("%w: key prefix %q: at most %d bytes, no spaces or control bytes", ErrInvalidOption, p, maxPrefixLen)
		}
		c.keyPrefix = p
		return nil
	}
}

// WithHash names the twemproxy hash that places keys on nodes: one of
// one_at_a_time, md5, crc16, crc32, crc32a, fnv1_64, fnv1a_64, fnv1_32,
// fnv1a_32, hsieh, murmur, jenkins (see package ring). An unknown name is
// an invalid option. Without WithDistribution the distribution is ketama,
// twemproxy's default.
func WithHash(name string) Option {
	return func(c *config) error {
		if !validName(name, knownHashes) {
			return fmt.Errorf("%w: hash %q, want one of %v", ErrInvalidOption, name, knownHashes)
		}
		c.hash = name
		return nil
	}
}

// WithDistribution names the twemproxy distribution, ketama, modula or
// random, or libmemcached_ketama, the weighted ketama of PHP's memcached
// extension with OPT_LIBKETAMA_COMPATIBLE (see package ring). Without
// WithHash the hash is fnv1a_64, twemproxy's default, or md5 under
// libmemcached_ketama.
func WithDistribution(name string) Option {
	return func(c *config) error {
		if !validName(name, knownDistributions) {
			return fmt.Errorf("%w: distribution %q, want one of %v", ErrInvalidOption, name, knownDistributions)
		}
		c.distribution = name
		return nil
	}
}

// WithSelector places keys with s instead of the servers passed to New,
// which must then be empty. s sees encoded keys (prefix included). It
// cannot be combined with WithHash or WithDistribution.
func WithSelector(s memcache.ServerSelector) Option {
	return func(c *config) error {
		if s == nil {
			return fmt.Errorf("%w: nil selector", ErrInvalidOption)
		}
		c.selector = s
		return nil
	}
}

// WithLeaseProtocol chooses the commands the Tier's leases (tier.Leaser)
// and bulk adds (AddBulk, which warmup uses) are built on:
// LeaseProtocolMeta, memcached's meta commands, which need memcached 1.6
// or later spoken to directly; LeaseProtocolClassic, gets, add and cas,
// which twemproxy (nutcracker) and older servers understand, for one more
// round trip per lease won and a reply to every bulk add; or
// LeaseProtocolAuto, the default, which asks each node once and uses meta
// where it can. Leases and bulk adds share the setting because it says
// what the node speaks: a proxy that hangs up on meta commands hangs up
// on either. The protocols leave the same items, so processes on either
// can share one memcached. Any other value is an invalid option.
func WithLeaseProtocol(p LeaseProtocol) Option {
	return func(c *config) error {
		if !slices.Contains(LeaseProtocols(), p) {
			return fmt.Errorf("%w: lease protocol %q, want one of %v", ErrInvalidOption, p, LeaseProtocols())
		}
		c.leaseProtocol = p
		return nil
	}
}

// WithClock sets the clock that expirations are computed against. Tests
// use it to decide TTLs without sleeping.
func WithClock(clk tier.Clock) Option {
	return func(c *config) error {
		if clk == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		c.clock = clk
		return nil
	}
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
