package sqlload

import "fmt"

// DefaultMaxBatch is the most keys one statement asks for unless
// WithMaxBatch says otherwise.
const DefaultMaxBatch = 500

// maxPlaceholders is the most parameters a MySQL prepared statement takes.
const maxPlaceholders = 65535

// Option configures a Loader.
type Option func(*Loader) error

// WithMaxBatch sets the most keys one statement asks for (default
// DefaultMaxBatch). Load splits a larger call into ceil(keys/n) statements,
// run one after the other; the chain usually calls Load with fewer keys
// than that already. n must be between 1 and 65535, MySQL's limit of
// placeholders per statement.
func WithMaxBatch(n int) Option {
	return func(l *Loader) error {
		if n < 1 || n > maxPlaceholders {
			return fmt.Errorf("sqlload: WithMaxBatch(%d): want 1 to %d", n, maxPlaceholders)
		}
		l.maxBatch = n
		return nil
	}
}

// WithPreparedStatements says whether Load keeps prepared statements
// (default true). With them, a batch is padded to the next power of two (or
// the maximum batch) by repeating its last key, and runs as one execution
// of a statement prepared once per connection and size: a round trip, where
// a one-off query with go-sql-driver/mysql's defaults costs three
// (prepare, execute, close). Without them each batch is a plain
// parameterised query, which the driver sends as it is configured to
// (interpolateParams). Turn them off behind proxies that do not support
// prepared statements, or when max_prepared_stmt_count is tight: expect
// about log2(maxBatch)+1 statements per pooled connection.
func WithPreparedStatements(on bool) Option {
	return func(l *Loader) error {
		l.prepared = on
		return nil
	}
}
