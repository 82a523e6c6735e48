package serve

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults of the server's limits.
const (
	// DefaultMaxConns is how many client connections are served at once;
	// one more is told so and closed. PHP-FPM keeps a connection per
	// worker, so thousands are usual.
	DefaultMaxConns = 4096
	// DefaultMaxLine bounds a command line: about 4,000 keys of 250
	// bytes, or 20,000 of 50, in one get (memcslap's mget sends every key
	// of its run in one line). A longer line is refused and its
	// connection closed. Only a connection that sends a long line holds a
	// buffer that long, and only while it answers it.
	DefaultMaxLine = 1 << 20
	// DefaultMaxValue is memcached's default item size limit (-I 1m).
	DefaultMaxValue = 1 << 20
	// DefaultRequestTimeout bounds the work of one command behind the
	// server, so that a stuck source cannot hold a connection for ever.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultVersion is what the version command answers: the memcached
	// protocol level the server speaks, which clients parse as numbers.
	DefaultVersion = "1.6.0"
	// maxKeyLen is memcached's key limit, which clients enforce too.
	maxKeyLen = 250
)

// Option configures a Server.
type Option func(*config) error

type config struct {
	maxConns       int
	maxLine        int
	maxValue       int
	idleTimeout    time.Duration
	requestTimeout time.Duration
	version        string
	logger         *slog.Logger
	extraStats     func() map[string]int64
}

func defaultConfig() config {
	return config{
		maxConns:       DefaultMaxConns,
		maxLine:        DefaultMaxLine,
		maxValue:       DefaultMaxValue,
		requestTimeout: DefaultRequestTimeout,
		version:        DefaultVersion,
		logger:         slog.New(slog.DiscardHandler),
	}
}

// WithMaxConns sets how many connections are served at once (default
// DefaultMaxConns).
func WithMaxConns(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("%w: max connections %d", ErrInvalidOption, n)
		}
		c.maxConns = n
		return nil
	}
}

// WithMaxLine sets the longest command line accepted, in bytes (default
// DefaultMaxLine; at least 1 KiB so that a storage command of a 250-byte
// key fits).
func WithMaxLine(n int) Option {
	return func(c *config) error {
		if n < 1024 {
			return fmt.Errorf("%w: max line %d: want at least 1024", ErrInvalidOption, n)
		}
		c.maxLine = n
		return nil
	}
}

// WithMaxValue sets the largest value a storage command may carry
// (default DefaultMaxValue).
func WithMaxValue(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("%w: max value %d", ErrInvalidOption, n)
		}
		c.maxValue = n
		return nil
	}
}

// WithIdleTimeout closes a connection that sends nothing for d, or does
// not read its replies for d (default 0: never, as memcached).
func WithIdleTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: idle timeout %v", ErrInvalidOption, d)
		}
		c.idleTimeout = d
		return nil
	}
}

// WithRequestTimeout bounds each command's work behind the server
// (default DefaultRequestTimeout; 0: unbounded).
func WithRequestTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: request timeout %v", ErrInvalidOption, d)
		}
		c.requestTimeout = d
		return nil
	}
}

// WithVersion sets what the version command answers.
func WithVersion(v string) Option {
	return func(c *config) error {
		if v == "" {
			return fmt.Errorf("%w: empty version", ErrInvalidOption)
		}
		c.version = v
		return nil
	}
}

// WithLogger logs connection-level events (refused connections, binary
// clients, panics) to l.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithStats adds the counters f returns to the stats command's reply.
func WithStats(f func() map[string]int64) Option {
	return func(c *config) error {
		c.extraStats = f
		return nil
	}
}
