package serve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"time"
)

// conn is one client connection: a loop that reads a command, answers it
// into the write buffer, and flushes when no further command is already
// waiting, so that a pipeline of requests is answered in order and in as
// few writes as it came in.
type conn struct {
	s    *Server
	nc   net.Conn // nil when driven by tests through run
	r    *bufio.Reader
	w    *bufio.Writer
	long []byte   // a line longer than the read buffer, assembled
	toks [][]byte // the current line's tokens
	num  []byte   // scratch for numbers
	// keyDecoded is set when a meta reply returned a base64 key decoded,
	// which then needs no b flag.
	keyDecoded bool
	quit       bool
	// noreply silences every reply to the current command, errors
	// included, as memcached's noreply does.
	noreply bool
}

// readBufferSize is the buffer of each connection's reader and writer:
// thousands of connections hold two each.
const readBufferSize = 4 << 10

// errLineTooLong is a command line over the limit.
var errLineTooLong = errors.New("line too long")

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{s: s, nc: nc, r: bufio.NewReaderSize(nc, readBufferSize), w: bufio.NewWriterSize(nc, readBufferSize)}
}

// wake interrupts a read the connection is blocked in, so that a
// draining server sees it idle.
func (c *conn) wake() { c.nc.SetReadDeadline(time.Now()) }

// serve runs the connection until the client leaves, the server drains, or
// an error ends it; it always closes the connection.
func (c *conn) serve() {
	c.s.stats.currConns.Add(1)
	defer c.s.stats.currConns.Add(-1)
	defer c.nc.Close()
	defer func() {
		if p := recover(); p != nil {
			c.s.stats.panics.Add(1)
			c.s.cfg.logger.Error("serve: connection panicked; closing it", "remote", c.nc.RemoteAddr(), "panic", p)
		}
	}()
	c.beforeRead()
	if first, err := c.r.Peek(1); err == nil && first[0] == binaryRequestMagic {
		c.refuseBinary()
		return
	}
	c.run()
}

// beforeRead arms the idle timeout, or ends the wait at once when the
// server is draining. The order matters: Shutdown sets draining before it
// wakes connections, so a connection either sees the flag here or is
// woken after it set its deadline.
func (c *conn) beforeRead() {
	if c.nc == nil {
		return
	}
	var deadline time.Time
	if d := c.s.cfg.idleTimeout; d > 0 {
		deadline = time.Now().Add(d)
	}
	// The write deadline too: a client that stops reading its replies is
	// as idle as one that stops sending.
	c.nc.SetDeadline(deadline)
	if c.s.draining.Load() {
		c.nc.SetReadDeadline(time.Now())
	}
}

// run is the command loop.
func (c *conn) run() {
	defer c.w.Flush()
	for !c.quit {
		if c.s.draining.Load() && c.r.Buffered() == 0 {
			return
		}
		c.beforeRead()
		line, err := c.readLine()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				c.s.stats.protocolErrors.Add(1)
				c.w.WriteString("CLIENT_ERROR line too long\r\n")
			}
			return
		}
		c.command(line)
		if cap(c.long) > readBufferSize {
			c.long = nil // a long line was a one-off; keep idle connections small
		}
		if c.r.Buffered() == 0 {
			if err := c.w.Flush(); err != nil {
				return
			}
		}
	}
}

// readLine returns the next line without its "\r\n" (or bare "\n").
func (c *conn) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		c.long = append(c.long[:0], line...)
		for err == bufio.ErrBufferFull && len(c.long) <= c.s.cfg.maxLine {
			line, err = c.r.ReadSlice('\n')
			c.long = append(c.long, line...)
		}
		line = c.long
	}
	if len(line) > c.s.cfg.maxLine+2 {
		return nil, errLineTooLong
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// tokenize splits line on spaces into c.toks.
func (c *conn) tokenize(line []byte) [][]byte {
	c.toks = c.toks[:0]
	for len(line) > 0 {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			c.toks = append(c.toks, line)
			break
		}
		if i > 0 {
			c.toks = append(c.toks, line[:i])
		}
		line = line[i+1:]
	}
	return c.toks
}

// command answers one command line.
func (c *conn) command(line []byte) {
	toks := c.tokenize(line)
	c.noreply = false
	if len(toks) == 0 {
		c.errorReply()
		return
	}
	ctx, cancel := c.requestContext()
	defer cancel()
	switch string(toks[0]) {
	case "get":
		c.get(ctx, toks, false, false)
	case "gets":
		c.get(ctx, toks, true, false)
	case "gat":
		c.get(ctx, toks, false, true)
	case "gats":
		c.get(ctx, toks, true, true)
	case "set", "add", "replace", "append", "prepend", "cas":
		c.storage(ctx, toks)
	case "delete":
		c.delete(ctx, toks)
	case "touch":
		c.touchCmd(ctx, toks)
	case "incr", "decr":
		c.arith(ctx, toks)
	case "mg":
		c.metaGet(ctx, toks)
	case "ms":
		c.metaSet(ctx, toks)
	case "md":
		c.metaDelete(ctx, toks)
	case "ma":
		c.metaArith(ctx, toks)
	case "mn":
		c.w.WriteString("MN\r\n")
	case "version":
		c.w.WriteString("VERSION " + c.s.cfg.version + "\r\n")
	case "verbosity":
		c.verbosity(toks)
	case "stats":
		c.statsCmd(toks)
	case "flush_all":
		c.flushAll()
	case "quit":
		c.quit = true
	default:
		c.errorReply()
	}
}

func (c *conn) requestContext() (context.Context, context.CancelFunc) {
	if d := c.s.cfg.requestTimeout; d > 0 {
		return context.WithTimeout(c.s.ctx, d)
	}
	return context.WithCancel(c.s.ctx)
}

// errorReply is memcached's answer to a command it does not know, or
// known with the wrong number of arguments.
func (c *conn) errorReply() {
	c.s.stats.protocolErrors.Add(1)
	c.w.WriteString("ERROR\r\n")
}

func (c *conn) clientError(msg string) {
	c.s.stats.protocolErrors.Add(1)
	c.reply("CLIENT_ERROR " + msg + "\r\n")
}

// reply writes s unless the command asked for no reply.
func (c *conn) reply(s string) {
	if !c.noreply {
		c.w.WriteString(s)
	}
}

// serverError answers a command whose backend failed.
func (c *conn) serverError(err error) {
	c.s.stats.backendErrors.Add(1)
	if c.noreply {
		return
	}
	c.w.WriteString("SERVER_ERROR ")
	c.w.WriteString(oneLine(err.Error()))
	c.w.WriteString("\r\n")
}

// oneLine keeps an error message from breaking the protocol's lines.
func oneLine(s string) string {
	const max = 200
	b := []byte(s)
	for i, ch := range b {
		if ch < ' ' {
			b[i] = ' '
		}
	}
	if len(b) > max {
		b = b[:max]
	}
	return string(b)
}

// readData reads a storage command's data block of n bytes and its
// "\r\n". ok is false when the command is over: the connection failed
// (and will close), or the block did not end in "\r\n", which gets
// memcached's bad data chunk, its n+2 bytes consumed all the same.
func (c *conn) readData(n int) (v []byte, ok bool) {
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		c.quit = true
		return nil, false
	}
	if buf[n] != '\r' || buf[n+1] != '\n' {
		c.clientError("bad data chunk")
		return nil, false
	}
	return buf[:n:n], true
}

// swallow discards a refused command's data block.
func (c *conn) swallow(n int64) error {
	_, err := io.CopyN(io.Discard, c.r, n+2)
	return err
}

// writeUint writes n in decimal.
func (c *conn) writeUint(n uint64) {
	c.num = strconv.AppendUint(c.num[:0], n, 10)
	c.w.Write(c.num)
}

// writeInt writes n in decimal.
func (c *conn) writeInt(n int64) {
	c.num = strconv.AppendInt(c.num[:0], n, 10)
	c.w.Write(c.num)
}
