package sqlload

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
)

// Statements that stop at the server.
//
// When a Load's context ends while its statement runs, the driver gives up
// on the connection, but the server goes on running the statement until it
// ends on its own: a slow query abandoned again and again fills the
// server's threads and connection slots. So every statement runs on a
// connection pinned for it, whose server thread id (pseudo_thread_id) the
// loader knows, and when the context ends first the loader sends KILL QUERY
// for that thread over another connection, waits for it, and has the
// pinned connection discarded. The thread id and the prepared statements
// are kept per connection (connCache), so a statement is still one round
// trip.

// killTimeout bounds the KILL QUERY sent for a statement whose context
// ended.
const killTimeout = 5 * time.Second

// maxConnStates bounds the connections connCache remembers. Connections
// the pool closed on its own are forgotten when it is full, at the cost of
// asking the live ones for their id and statements again.
const maxConnStates = 1024

// connState is what the loader knows about one driver connection.
type connState struct {
	id    int64               // the server's thread id; 0 until asked
	stmts map[int]driver.Stmt // prepared statements by batch size
}

// connCache maps driver connections to their state. It is safe for
// concurrent use; a connState is only used by the goroutine holding its
// connection.
type connCache struct {
	mu     sync.Mutex
	closed bool
	conns  map[driver.Conn]*connState
}

func (c *connCache) get(dc driver.Conn) *connState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.conns[dc]
	if st == nil {
		if c.conns == nil || len(c.conns) >= maxConnStates {
			c.conns = make(map[driver.Conn]*connState)
		}
		st = &connState{stmts: make(map[int]driver.Stmt)}
		c.conns[dc] = st
	}
	return st
}

func (c *connCache) drop(dc driver.Conn) {
	c.mu.Lock()
	delete(c.conns, dc)
	c.mu.Unlock()
}

// isClosed reports whether Close ran: statements are no longer prepared.
func (c *connCache) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// close forgets every connection. The server releases a connection's
// prepared statements when the connection closes; closing them here would
// use connections other goroutines may hold.
func (c *connCache) close() {
	c.mu.Lock()
	c.conns, c.closed = nil, true
	c.mu.Unlock()
}

// run runs text with args on a connection pinned for it and calls row for
// every row, with the key and value columns as text (nil for NULL). size,
// when not 0, is the batch size the statement is prepared and kept for.
// When ctx ends first, the statement is killed at the server.
func (l *Loader) run(ctx context.Context, text string, size int, args []string, row func(key, value []byte) error) error {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(raw any) error {
		dc, ok := raw.(driver.Conn)
		if !ok {
			return fmt.Errorf("driver connection %T", raw)
		}
		st := l.conns.get(dc)
		if st.id == 0 {
			if st.id, err = threadID(ctx, dc); err != nil {
				l.conns.drop(dc)
				return err
			}
		}
		// The statement runs on a context of its own, so that the driver
		// keeps the connection open and reads the statement's end: once
		// ctx ends, the kill makes the server end it with an error, and
		// only then is the statement over at the server. If the kill
		// fails, or the answer does not come, the connection is dropped.
		stmtCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
		defer hardStop()
		ended, killed := make(chan struct{}), make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(killed)
			if !l.kill(st.id) {
				hardStop()
				return
			}
			select {
			case <-ended:
			case <-time.After(killTimeout):
				hardStop()
			}
		})
		err := l.statement(stmtCtx, dc, st, text, size, args, row)
		close(ended)
		if !stop() {
			// Killed: the kill must not reach the next statement on this
			// connection, so the connection goes.
			<-killed
			l.conns.drop(dc)
			return errors.Join(ctx.Err(), err, driver.ErrBadConn)
		}
		return err
	})
}

// statement runs text on dc: a prepared statement kept in st for size, or a
// one-off query.
func (l *Loader) statement(ctx context.Context, dc driver.Conn, st *connState, text string, size int, args []string, row func(key, value []byte) error) error {
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	var rows driver.Rows
	var err error
	if size > 0 {
		stmt := st.stmts[size]
		if stmt == nil {
			if stmt, err = prepare(ctx, dc, text); err != nil {
				return err
			}
			st.stmts[size] = stmt
		}
		rows, err = queryStmt(ctx, stmt, named)
	} else {
		rows, err = queryOnce(ctx, dc, text, named)
	}
	if err != nil {
		return err
	}
	defer rows.Close()
	if cols := rows.Columns(); len(cols) != 2 {
		return fmt.Errorf("%w: the query returns %d columns %q, want 2 (key, value)", ErrBadQuery, len(cols), cols)
	}
	dest := make([]driver.Value, 2)
	for {
		if err := rows.Next(dest); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := row(asText(dest[0]), asText(dest[1])); err != nil {
			return err
		}
	}
}

// queryOnce runs text without keeping a prepared statement: as text when
// the driver interpolates arguments, else prepared, run and closed.
func queryOnce(ctx context.Context, dc driver.Conn, text string, args []driver.NamedValue) (driver.Rows, error) {
	if q, ok := dc.(driver.QueryerContext); ok {
		rows, err := q.QueryContext(ctx, text, args)
		if !errors.Is(err, driver.ErrSkip) {
			return rows, err
		}
	}
	stmt, err := prepare(ctx, dc, text)
	if err != nil {
		return nil, err
	}
	rows, err := queryStmt(ctx, stmt, args)
	if err != nil {
		stmt.Close()
		return nil, err
	}
	return closingRows{rows, stmt}, nil
}

// closingRows closes a one-off statement with its rows.
type closingRows struct {
	driver.Rows
	stmt driver.Stmt
}

func (r closingRows) Close() error { return errors.Join(r.Rows.Close(), r.stmt.Close()) }

func prepare(ctx context.Context, dc driver.Conn, text string) (driver.Stmt, error) {
	if p, ok := dc.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, text)
	}
	return dc.Prepare(text)
}

func queryStmt(ctx context.Context, stmt driver.Stmt, args []driver.NamedValue) (driver.Rows, error) {
	if q, ok := stmt.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	values := make([]driver.Value, len(args))
	for i, a := range args {
		values[i] = a.Value
	}
	return stmt.Query(values) //nolint:staticcheck // drivers without contexts
}

// threadID asks the server for the connection's thread id. It reads the
// session's pseudo_thread_id, which is the thread id unless the session
// changed it, rather than SELECT CONNECTION_ID(), so that the statements a
// loader sends to the server's SELECT counters are its loads.
func threadID(ctx context.Context, dc driver.Conn) (int64, error) {
	rows, err := queryOnce(ctx, dc, "SHOW SESSION VARIABLES LIKE 'pseudo_thread_id'", nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	if len(dest) != 2 {
		return 0, fmt.Errorf("pseudo_thread_id: %d columns", len(dest))
	}
	if err := rows.Next(dest); err != nil {
		return 0, fmt.Errorf("pseudo_thread_id: %w", err)
	}
	id, err := strconv.ParseInt(string(asText(dest[1])), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("pseudo_thread_id = %q", asText(dest[1]))
	}
	return id, nil
}

// kill stops whatever statement thread id runs, from another connection,
// and reports whether the server took the kill.
func (l *Loader) kill(id int64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	l.stats.kills.Add(1)
	if _, err := l.db.ExecContext(ctx, "KILL QUERY "+strconv.FormatInt(id, 10)); err != nil {
		l.stats.killErrors.Add(1)
		return false
	}
	return true
}

// asText is a column value as text, as database/sql would scan it into
// []byte; nil for NULL.
func asText(v driver.Value) []byte {
	switch v := v.(type) {
	case nil:
		return nil
	case []byte:
		return v
	case string:
		return []byte(v)
	case int64:
		return strconv.AppendInt(nil, v, 10)
	case uint64:
		return strconv.AppendUint(nil, v, 10)
	case float64:
		return strconv.AppendFloat(nil, v, 'g', -1, 64)
	case float32:
		return strconv.AppendFloat(nil, float64(v), 'g', -1, 32)
	case bool:
		return strconv.AppendBool(nil, v)
	case time.Time:
		return v.AppendFormat(nil, time.RFC3339Nano)
	default:
		return fmt.Appendf(nil, "%v", v)
	}
}
