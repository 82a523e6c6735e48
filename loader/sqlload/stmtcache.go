package sqlload

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache holds one prepared statement per batch size. Batches are
// padded up to a power of two (or the maximum batch), repeating their last
// key, so a handful of statements serve every size: 1, 2, 4 ... 256, 500
// with the default maximum. A statement is prepared on the first Load that
// needs its size and then executed in one round trip instead of the
// prepare, execute and close a one-off parameterised query costs.
type stmtCache struct {
	db       *sql.DB
	tmpl     template
	maxBatch int

	mu     sync.Mutex
	closed bool
	stmts  map[int]*sql.Stmt
}

// size returns the padded size of a batch of n keys.
func (c *stmtCache) size(n int) int {
	size := 1
	for size < n {
		size *= 2
	}
	return min(size, c.maxBatch)
}

// get returns the statement for size keys, preparing it if need be; nil
// without an error once the cache is closed.
func (c *stmtCache) get(ctx context.Context, size int) (*sql.Stmt, error) {
	c.mu.Lock()
	stmt, closed := c.stmts[size], c.closed
	c.mu.Unlock()
	if stmt != nil || closed {
		return stmt, nil
	}
	stmt, err := c.db.PrepareContext(ctx, c.tmpl.expand(size))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	winner, closed := c.stmts[size], c.closed
	if winner == nil && !closed {
		c.stmts[size] = stmt
	}
	c.mu.Unlock()
	if winner != nil || closed {
		stmt.Close() // another Load prepared it first, or Close ran meanwhile
		return winner, nil
	}
	return stmt, nil
}

// close closes every statement; later batches run unprepared.
func (c *stmtCache) close() error {
	c.mu.Lock()
	stmts := c.stmts
	c.stmts, c.closed = nil, true
	c.mu.Unlock()
	var firstErr error
	for _, stmt := range stmts {
		if err := stmt.Close(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}
