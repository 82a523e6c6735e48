package boltdb

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// Defaults for the options. They suit a cache of up to a few million
// entries on a local SSD.
const (
	DefaultGCInterval    = time.Minute
	DefaultGCBatch       = 1000
	DefaultLockTimeout   = time.Second
	DefaultQueueSize     = 10000
	DefaultBatchSize     = 4096
	DefaultFlushInterval = 10 * time.Millisecond
	DefaultRecencyLog    = 1_000_000
)

// An Option configures Open. Options given values they cannot use make Open
// return an error wrapping ErrInvalidOption; they never panic.
type Option func(*options) error

type options struct {
	gcInterval    time.Duration
	gcBatch       int
	gcGrace       time.Duration
	maxEntries    int
	maxBytes      int64
	lockTimeout   time.Duration
	quarantine    bool
	queueSize     int
	batchSize     int
	flushInterval time.Duration
	clock         tier.Clock
	noSync        bool
	readOnly      bool
	recencyLog    int
	logger        *slog.Logger
}

func defaultOptions() options {
	return options{
		gcInterval:    DefaultGCInterval,
		gcBatch:       DefaultGCBatch,
		lockTimeout:   DefaultLockTimeout,
		queueSize:     DefaultQueueSize,
		batchSize:     DefaultBatchSize,
		flushInterval: DefaultFlushInterval,
		recencyLog:    DefaultRecencyLog,
		clock:         systemClock{},
		logger:        slog.Default(),
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...)
}

// WithGCInterval sets how often the background GC sweeps out expired
// entries. Zero disables the background GC; RunGC still works.
func WithGCInterval(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return invalid("WithGCInterval(%s): negative interval", d)
		}
		o.gcInterval = d
		return nil
	}
}

// WithGCBatch sets how many entries one GC or eviction transaction deletes.
// Small transactions keep the writer from waiting behind the GC: bbolt
// admits one read-write transaction at a time.
func WithGCBatch(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return invalid("WithGCBatch(%d): need at least 1", n)
		}
		o.gcBatch = n
		return nil
	}
}

// WithGCGrace keeps entries for d past their expiry before the GC deletes
// them, so that a chain allowed to serve stale data when the source of
// truth fails still finds a recently expired copy. The default is zero.
func WithGCGrace(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return invalid("WithGCGrace(%s): negative grace", d)
		}
		o.gcGrace = d
		return nil
	}
}

// WithMaxEntries caps the number of entries. Past the cap the entries
// written longest ago are evicted, in the transaction that overflowed the
// cap. Zero, the default, means no cap.
func WithMaxEntries(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return invalid("WithMaxEntries(%d): negative cap", n)
		}
		o.maxEntries = n
		return nil
	}
}

// WithMaxBytes caps the bytes of keys and envelopes held, counted as
// len(key)+1+len(envelope) per entry. The file itself is larger (indexes,
// page overhead, free pages) and never shrinks. Past the cap the entries
// written longest ago are evicted. Zero, the default, means no cap.
func WithMaxBytes(n int64) Option {
	return func(o *options) error {
		if n < 0 {
			return invalid("WithMaxBytes(%d): negative cap", n)
		}
		o.maxBytes = n
		return nil
	}
}

// WithLockTimeout sets how long Open waits for another holder of the file
// to let go before it returns an error wrapping ErrLocked. Zero means try
// once and do not wait. The default is one second.
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return invalid("WithLockTimeout(%s): negative timeout", d)
		}
		o.lockTimeout = d
		return nil
	}
}

// WithQuarantineCorrupt makes Open rename a corrupt file to
// "<path>.corrupt-<unix seconds>" and start a fresh one, so that a damaged
// cache costs a cold start instead of an outage. Without it Open returns an
// error wrapping ErrCorrupt. A read-only Store never renames anything.
func WithQuarantineCorrupt(on bool) Option {
	return func(o *options) error {
		o.quarantine = on
		return nil
	}
}

// WithQueueSize bounds the write-behind queue, in distinct keys. Sets and
// Adds that find it full wait for room as long as their context lets them;
// deletes may use as many slots again before they wait (see Store.Set and
// Store.Delete). The default is 10,000.
func WithQueueSize(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return invalid("WithQueueSize(%d): need at least 1", n)
		}
		o.queueSize = n
		return nil
	}
}

// WithBatchSize sets the most writes applied in one bbolt transaction, that
// is per commit and its fsync. Throughput into the file is about the batch
// size over the commit time, and a commit costs mostly the disk's sync
// latency, so a larger batch keeps up on a slower disk. The default is
// 4,096.
func WithBatchSize(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return invalid("WithBatchSize(%d): need at least 1", n)
		}
		o.batchSize = n
		return nil
	}
}

// WithFlushInterval sets how long the writer, woken by a write to an idle
// queue, waits for a full batch before it commits what it has. Zero commits
// as soon as the writer is free; writes that arrive during a commit still
// share the next one. The default is 10ms.
func WithFlushInterval(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return invalid("WithFlushInterval(%s): negative interval", d)
		}
		o.flushInterval = d
		return nil
	}
}

// WithRecencyLog sets how many key uses (writes, and reads that found the
// key in the file) the use log keeps, so that ScanHot lists the entries
// used most recently first; older uses are forgotten. It costs about
// len(key)+1 bytes of disk per use kept, and ScanHot about 20 bytes of
// memory per use while it runs. Size it to the working set: a warmup
// sends the keys of the log first, then everything else. Zero turns the
// log off, and ScanHot lists only queued writes first. The default is
// DefaultRecencyLog.
func WithRecencyLog(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return invalid("WithRecencyLog(%d): negative size", n)
		}
		o.recencyLog = n
		return nil
	}
}

// WithClock sets the clock the GC compares expiry times with. Tests inject
// one to expire entries without sleeping.
func WithClock(c tier.Clock) Option {
	return func(o *options) error {
		if c == nil {
			return invalid("WithClock(nil)")
		}
		o.clock = c
		return nil
	}
}

// WithNoSync skips fsync after each commit (bbolt's NoSync). Writes get
// faster and a machine crash may lose or corrupt the file; pair it with
// WithQuarantineCorrupt. Bulk loads and benchmarks use it.
func WithNoSync(on bool) Option {
	return func(o *options) error {
		o.noSync = on
		return nil
	}
}

// WithReadOnly opens the file for inspection: a shared lock, so several
// readers may open it while no writer holds it, no background goroutines,
// and writes that return an error wrapping ErrReadOnly.
func WithReadOnly() Option {
	return func(o *options) error {
		o.readOnly = true
		return nil
	}
}

// WithLogger sets where the store reports damage it finds in the file:
// the first record that fails its checksum is logged, later ones only
// counted. The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return invalid("WithLogger(nil)")
		}
		o.logger = l
		return nil
	}
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
