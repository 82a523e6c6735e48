package memory

import (
	"errors"
	"fmt"

	"github.com/tiercache/tiercache/tier"
)

// ErrInvalidOption is returned by New for an option value that can never
// work (a negative size, a zero TTL...).
var ErrInvalidOption = errors.New("memory: invalid option")

// Preallocated so that a miss and a lost add do not allocate.
var (
	errMiss      = fmt.Errorf("memory: %w", tier.ErrMiss)
	errNotStored = fmt.Errorf("memory: add: %w", tier.ErrNotStored)
	errClosed    = fmt.Errorf("memory: %w", tier.ErrClosed)
)
