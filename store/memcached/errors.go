package memcached

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/bradfitz/gomemcache/memcache"

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

	// ErrUnsupported is returned by New for a hash or distribution that is
	// a valid twemproxy name but that this package does not yet place keys
	// with exactly as twemproxy does. Placing keys differently from the
	// proxy other clients use would split the cache in two, so New refuses
	// rather than approximates.
	ErrUnsupported = errors.New("memcached: unsupported")

	// ErrInvalidOption is returned by New for an option value that can never
	// work (a negative timeout, an unknown hash name...).
	ErrInvalidOption = errors.New("memcached: invalid option")
)

// Preallocated so that the hot paths (a miss, a lost add) do not allocate.
var (
	errMiss      = fmt.Errorf("memcached: %w", tier.ErrMiss)
	errNotStored = fmt.Errorf("memcached: add: %w", tier.ErrNotStored)
)

// serverTooLarge reports whether err is memcached refusing an item because
// it exceeds the server's item size limit (-I). gomemcache has no sentinel
// for it: the reply reaches us as an "unexpected response line" error that
// quotes "SERVER_ERROR object too large for cache".
func serverTooLarge(err error) bool {
	return err != nil && strings.Contains(err.Error(), "SERVER_ERROR object too large")
}

// isTimeout reports whether err is a dial, read or write deadline expiring.
// gomemcache reports a slow dial as its own *ConnectTimeoutError, which is
// not a net.Error.
func isTimeout(err error) bool {
	var cte *memcache.ConnectTimeoutError
	if errors.As(err, &cte) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
