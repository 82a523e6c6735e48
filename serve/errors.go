package serve

import "errors"

var (
	// ErrNotStored is returned by an Adder whose key was already present.
	ErrNotStored = errors.New("serve: not stored")

	// ErrFlags is returned by a Backend that cannot keep the client flags
	// it was given (a read-through route keeps the source's bytes only).
	ErrFlags = errors.New("serve: client flags not supported by this route")

	// ErrInvalidOption is returned by New and NewRouter for an option
	// that cannot work.
	ErrInvalidOption = errors.New("serve: invalid option")

	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("serve: server closed")

	// ErrBadItem is returned when bytes stored under a plain-cache key
	// are not an item this package wrote.
	ErrBadItem = errors.New("serve: malformed stored item")
)
