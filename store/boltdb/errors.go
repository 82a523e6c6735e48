package boltdb

import "errors"

var (
	// ErrLocked is returned by Open when another process, or another Store
	// in this process, holds the file and did not let go within the lock
	// timeout (WithLockTimeout). bbolt takes an exclusive flock on the file;
	// two writers on one file would corrupt it.
	ErrLocked = errors.New("boltdb: database file is locked by another opener")

	// ErrCorrupt is returned by Open when the file is not a bbolt database,
	// is truncated, or fails the checks Open runs on it, and by reads that
	// hit a damaged page. WithQuarantineCorrupt moves such a file aside
	// instead of failing.
	ErrCorrupt = errors.New("boltdb: database file is corrupt")

	// ErrReadOnly is returned by writes to a Store opened WithReadOnly.
	ErrReadOnly = errors.New("boltdb: store is read-only")

	// ErrInvalidOption is returned by Open for an option given a value it
	// cannot use (a negative duration, a zero batch size...).
	ErrInvalidOption = errors.New("boltdb: invalid option")

	// ErrQueueFull is returned by Set and Add when the write queue stayed
	// full until the caller's context ended: the value was not queued for
	// the file. The error says what became of an older copy.
	ErrQueueFull = errors.New("boltdb: write queue full")

	// ErrLostWrites is returned by Close when writes that had been
	// accepted did not reach the file: the last attempt at their batch
	// failed.
	ErrLostWrites = errors.New("boltdb: writes did not reach the file")
)

// errChecksum marks a record that fails its checksum: damaged on disk.
// Reads treat it as a miss, so it never leaves the package.
var errChecksum = errors.New("boltdb: record fails its checksum")
