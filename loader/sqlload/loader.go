package sqlload

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tiercache/tiercache/tier"
)

var _ tier.Loader = (*Loader)(nil)

// Loader reads values from SQL with one query template. It is safe for
// concurrent use. It caches no values, only prepared statements and the
// server's thread id of each connection it used, which Close forgets.
type Loader struct {
	db       *sql.DB
	tmpl     template
	maxBatch int
	prepared bool
	conns    connCache
	stats    counters
}

// New returns a Loader that runs query on db. The query has exactly one
// "IN (?)" list, which Load expands to one placeholder per key, and no other
// placeholder; it returns two columns, the key and the value:
//
//	SELECT id, body FROM articles WHERE id IN (?)
//
// IN is matched case-insensitively with any blanks around "(", "?" and
// ")"; a '?' in a quoted string or a comment is not a placeholder. A query
// that breaks these rules is rejected with an error wrapping ErrBadQuery,
// before any I/O. The column count is only known from the first result and
// is checked by Load.
func New(db *sql.DB, query string, opts ...Option) (*Loader, error) {
	if db == nil {
		return nil, errors.New("sqlload: New: nil *sql.DB")
	}
	tmpl, err := parseTemplate(query)
	if err != nil {
		return nil, err
	}
	l := &Loader{db: db, tmpl: tmpl, maxBatch: DefaultMaxBatch, prepared: true}
	for _, opt := range opts {
		if err := opt(l); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Close forgets the prepared statements: later loads work, without them.
// The server frees them when the pool closes its connections. It does not
// close the *sql.DB.
func (l *Loader) Close() error {
	l.conns.close()
	return nil
}

// Load returns the values of the keys that have a row; a key absent from
// the map has none. Duplicate keys are asked for once. Up to WithMaxBatch
// keys go into one statement; more take several, run in turn, and Load
// fails as a whole if any of them fails: it never returns part of the
// answer, which a caller would take for "the rest does not exist".
//
// A row counts for a key when its first column, read as text, is byte for
// byte that key: an INT column works with decimal keys ("42", not "042"),
// and rows that the database matched only through a case-insensitive
// collation, trailing spaces or a numeric conversion ("42abc" = 42) are
// ignored. A NULL value is an existing row with an empty value. When a key
// has several rows, the first wins.
//
// Errors from the database, including ctx ending, wrap ErrSource and the
// underlying error.
func (l *Loader) Load(ctx context.Context, keys []string) (map[string][]byte, error) {
	wanted := make(map[string]bool, len(keys))
	unique := make([]string, 0, len(keys))
	for _, k := range keys {
		if !wanted[k] {
			wanted[k] = true
			unique = append(unique, k)
		}
	}
	found := make(map[string][]byte, len(unique))
	if len(unique) == 0 {
		return found, nil
	}
	l.stats.loads.Add(1)
	l.stats.keys.Add(int64(len(unique)))
	for start := 0; start < len(unique); start += l.maxBatch {
		batch := unique[start:min(start+l.maxBatch, len(unique))]
		if err := l.query(ctx, batch, wanted, found); err != nil {
			l.stats.errors.Add(1)
			return nil, err
		}
	}
	return found, nil
}

// query runs one statement for batch and adds its rows to found. A
// statement whose ctx ends while it runs is killed at the server.
func (l *Loader) query(ctx context.Context, batch []string, wanted map[string]bool, found map[string][]byte) error {
	op := fmt.Sprintf("query %d keys", len(batch))
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrSource, op, err)
	}
	size, prepared := len(batch), 0
	if l.prepared && !l.conns.isClosed() {
		size = padded(len(batch), l.maxBatch)
		prepared = size
	}
	args := make([]string, size)
	for i := range args {
		args[i] = batch[min(i, len(batch)-1)] // padding repeats the last key
	}
	l.stats.statements.Add(1)
	var rowCount, ignored int64
	err := l.run(ctx, l.tmpl.expand(size), prepared, args, func(key, value []byte) error {
		if _, seen := found[string(key)]; key == nil || !wanted[string(key)] || seen {
			ignored++
			return nil
		}
		found[string(key)] = bytes.Clone(value)
		if found[string(key)] == nil {
			found[string(key)] = []byte{}
		}
		rowCount++
		return nil
	})
	if errors.Is(err, ErrBadQuery) {
		return err
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrSource, op, err)
	}
	l.stats.rows.Add(rowCount)
	l.stats.ignored.Add(ignored)
	return nil
}

// padded is the size a batch of n keys is padded to: the next power of
// two, or the maximum batch. A handful of prepared statements then serve
// every size: 1, 2, 4 ... 256, 500 with the default maximum.
func padded(n, maxBatch int) int {
	size := 1
	for size < n {
		size *= 2
	}
	return min(size, maxBatch)
}

// Stats returns the counters since New.
func (l *Loader) Stats() Stats { return l.stats.snapshot() }
