package memcached

import (
	"errors"
	"fmt"
	"net"

	"github.com/tiercache/tiercache/tier"
)

var (
	// ErrBadServer is returned by ParseServer and New for a server string
	// that is not "host:port[:weight] [name]", or that names a host that
	// does not resolve. The error quotes the offending string.
	ErrBadServer = errors.New("memcached: bad server")

	// ErrUnavailable wraps every failure to talk to memcached: refused or
	// reset connections, timeouts, garbled replies, server errors. The chain
	// treats it like a miss (plus an error count), because a broken cache
	// must never fail a read that the tiers below can answer. The original
	// error stays in the chain, so errors.Is(err, os.ErrDeadlineExceeded)
	// still tells a timeout.
	ErrUnavailable = errors.New("memcached: server unavailable")

	// ErrInvalidOption is returned by New for an option value that can never
	// work (a negative timeout, an unknown hash name...).
	ErrInvalidOption = errors.New("memcached: invalid option")
)

// Preallocated so that the hot paths (a miss, a lost add) do not allocate.
var (
	errMiss      = fmt.Errorf("memcached: %w", tier.ErrMiss)
	errNotStored = fmt.Errorf("memcached: add: %w", tier.ErrNotStored)
)

// isTimeout reports whether err is a dial, read or write deadline expiring.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

var (
	// ErrNodeDown wraps ErrUnavailable for an operation answered at once,
	// without touching the network, because the node its key belongs to
	// has been marked down after repeated failures (see WithFailureLimit).
	// The chain treats it like any unavailable node: a miss, counted as an
	// error, answered by the tier below. A Set or Delete answered so is
	// remembered (up to a limit per node, see NodeStats): the node deletes
	// the key before it takes traffic again, so it never serves the value
	// the write replaced.
	ErrNodeDown = fmt.Errorf("memcached: node marked down: %w", ErrUnavailable)

	// ErrNoServers wraps ErrUnavailable for an operation on a Tier that has
	// no server to send it to: discovery has not produced a list yet (see
	// WithDiscoveryRetry).
	ErrNoServers = fmt.Errorf("memcached: no servers: %w", ErrUnavailable)

	// ErrDiscovery is returned by New when WithDiscovery is given and the
	// first query of the configuration endpoint fails (unless
	// WithDiscoveryRetry is on). It wraps the reason.
	ErrDiscovery = errors.New("memcached: discovery failed")
)

// errUnknownCommand is a configuration endpoint answering ERROR: an
// engine too old for "config get cluster".
var errUnknownCommand = errors.New("server does not know the command")
