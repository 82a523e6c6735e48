package wire

import (
	"errors"
	"io"
	"syscall"
)

var (
	// ErrProtocol is a reply the stream cannot go on after: a line that
	// does not parse, or a reply where another was due.
	ErrProtocol = errors.New("memcached: unexpected reply")

	// ErrConnLost wraps the failures of requests that were pipelined
	// behind another on a connection that broke: the connection failed
	// once, with the first request's error, and the others were lost with
	// it. Their failure is not counted again against the node.
	ErrConnLost = errors.New("memcached: connection lost")

	// ErrClosed is returned once the Pool is closed.
	ErrClosed = errors.New("memcached: connection pool closed")
)

// Answered wraps err, the reason a request's Read gives up on a
// connection although the server proved alive (a proxy that answered with
// an error, then hung up). The connection is dropped, but the node's
// health hook is told of an answer, not a failure.
func Answered(err error) error { return answeredError{err} }

type answeredError struct{ err error }

func (e answeredError) Error() string { return e.err.Error() }
func (e answeredError) Unwrap() error { return e.err }

// Stale reports whether err is the peer having closed the connection: EOF,
// a reset, a broken pipe. A pooled connection the server closed while it
// was idle (memcached restarted) fails so on its next use.
func Stale(err error) bool {
	return err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}
