package sqlload

import "errors"

var (
	// ErrBadQuery is returned by New for a query template without exactly
	// one IN (?) list or with other placeholders, and by Load when the
	// query does not return two columns.
	ErrBadQuery = errors.New("sqlload: bad query template")

	// ErrSource wraps every error of the database itself (connection,
	// statement, scan, or the caller's context ending mid-query), so that
	// callers can tell that the source of truth failed. The underlying
	// error stays reachable: errors.Is(err, context.Canceled) and
	// errors.As(err, new(*mysql.MySQLError)) work.
	ErrSource = errors.New("sqlload: source error")
)
