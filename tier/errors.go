package tier

import "errors"

var (
	// ErrNotFound is returned when the source of truth has no row for a key.
	// It is remembered in every tier for the negative TTL.
	ErrNotFound = errors.New("tier: not found")

	// ErrMiss is returned by a Tier that does not hold a key.
	ErrMiss = errors.New("tier: cache miss")

	// ErrNotStored is returned by Adder.Add when the key is already present.
	ErrNotStored = errors.New("tier: not stored")

	// ErrInvalidKey is returned, before any I/O, for a key the chain cannot
	// serve at all (longer than the configured maximum).
	ErrInvalidKey = errors.New("tier: invalid key")

	// ErrTooLarge is returned by a Tier that cannot hold a value of that
	// size. The chain treats it as a miss for that tier only.
	ErrTooLarge = errors.New("tier: value too large for tier")

	// ErrBadEnvelope is returned when stored bytes are not an entry this
	// package wrote.
	ErrBadEnvelope = errors.New("tier: malformed entry envelope")

	// ErrClosed is returned by a Cache or Tier that has been closed.
	ErrClosed = errors.New("tier: closed")

	// ErrLeaseLost is returned by Leaser.Fill when the lease it was given
	// is no longer the key's: an invalidation voided it, or it expired and
	// another caller took over. The fill is refused, which is what keeps a
	// load that raced with an invalidation from writing the old value back.
	ErrLeaseLost = errors.New("tier: lease lost")

	// ErrOverloaded is returned for keys whose load waited the whole load
	// timeout for one of the WithLoadConcurrency slots and was shed.
	ErrOverloaded = errors.New("tier: too many loads")

	// ErrSourceDown is returned for keys not loaded because the breaker is
	// open: the source failed too many loads in a row lately (WithBreaker).
	ErrSourceDown = errors.New("tier: source failing, not asked")

	// ErrLoaderPanic wraps the value of a panic raised while loading, so
	// that every waiter sees an error instead of the process crashing.
	ErrLoaderPanic = errors.New("tier: loader panicked")
)
