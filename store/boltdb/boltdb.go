package boltdb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/tiercache/tiercache/tier"
)

var (
	_ tier.Tier        = (*Store)(nil)
	_ tier.Adder       = (*Store)(nil)
	_ tier.BulkAdder   = (*Store)(nil)
	_ tier.MultiGetter = (*Store)(nil)
	_ tier.Scanner     = (*Store)(nil)
	_ tier.Counter     = (*Store)(nil)
)

// Errors returned often enough to be allocated once.
var (
	errClosed = fmt.Errorf("boltdb: %w", tier.ErrClosed)
	errMiss   = fmt.Errorf("boltdb: %w", tier.ErrMiss)
)

// Store is the durable tier: a bbolt file of entries, read directly and
// written behind by one background goroutine. It is safe for concurrent
// use. Close it to stop its goroutines and flush the queue.
type Store struct {
	path        string
	quarantined string
	opts        options
	db          *bolt.DB
	q           *writeQueue
	stats       stats

	// ctx is cancelled by Close; it stops the writer and the GC.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup

	gcMu sync.Mutex // one GC pass at a time

	// scanChunk is how many entries Scan reads per read transaction.
	scanChunk int

	// legacy is set for a version 1 file opened read-only: its records
	// have no checksums (see layoutVersion).
	legacy bool

	// touched drops repeated touches of a key (recency.go).
	touched *touchFilter

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	drainErr  error // set by the writer before it exits
}

// Open opens or creates the bbolt file at path and starts the background
// writer and, unless WithGCInterval(0), the GC.
//
// A file another Store or process holds fails after the lock timeout with
// an error wrapping ErrLocked. A file that is not a database, is truncated
// or fails Open's checks fails with an error wrapping ErrCorrupt, or with
// WithQuarantineCorrupt is moved aside and replaced by an empty one.
func Open(path string, opts ...Option) (*Store, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("boltdb: open %s: %w", path, err)
		}
	}
	db, aside, t, err := openFile(path, &o)
	if err != nil {
		return nil, err
	}
	legacy, err := isLegacy(db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("boltdb: open %s: %w", path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		legacy:      legacy,
		path:        path,
		quarantined: aside,
		opts:        o,
		db:          db,
		q:           newWriteQueue(o.queueSize, o.batchSize),
		ctx:         ctx,
		cancel:      cancel,
		scanChunk:   1000,
		touched:     newTouchFilter(),
	}
	s.stats.setTotals(0, t)
	if aside != "" {
		s.stats.quarantined.Store(1)
	}
	if o.readOnly {
		s.q.close()
		return s, nil
	}
	s.bg.Add(1)
	go s.runWriter()
	if o.gcInterval > 0 {
		s.bg.Add(1)
		go s.runGC()
	}
	return s, nil
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Name is how the chain's stats call this tier.
func (s *Store) Name() string { return "bbolt" }

// Quarantined returns where Open moved a corrupt file, or "" if it did not.
// Operators want to hear about it: the cache started cold.
func (s *Store) Quarantined() string { return s.quarantined }

// Close stops the GC, writes everything still queued, and closes the file.
// It returns the errors of batches that failed to commit on the way out.
// Close is idempotent; afterwards every method returns an error wrapping
// tier.ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.q.close()
		s.cancel()
		s.bg.Wait()
		s.q.stop()
		err := s.drainErr
		if cerr := s.db.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("boltdb: close %s: %w", s.path, cerr))
		}
		s.closeErr = err
	})
	return s.closeErr
}

// usable returns the error a call should fail with before doing anything:
// the store is closed or the caller gave up.
func (s *Store) usable(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return ctx.Err()
}

// writable returns the error a write should fail with before doing
// anything. It ignores the caller's context: queueing a write never blocks,
// and a delete should get through even for a caller that is giving up.
func (s *Store) writable(op string) error {
	if s.closed.Load() {
		return errClosed
	}
	if s.opts.readOnly {
		return fmt.Errorf("boltdb: %s %s: %w", op, s.path, ErrReadOnly)
	}
	return nil
}
