package memcached

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// Round trips of the lease commands.
//
// The lease commands are ones gomemcache cannot send: meta commands (mg
// with N, ms and md with C), or on the classic protocol gets, add and cas
// pipelined in one write, with CAS values that gomemcache keeps to itself.
// They go over connections of their own, one request at a time per
// connection, kept idle per node between requests like gomemcache's pool
// (up to WithMaxIdleConns). A request is a batch of commands written at
// once; the replies come back in order.
//
// The connections are dialed through the Tier's connSet, so Close (and a
// node leaving the cluster) closes them, and their failures count towards
// the node's health like any operation's.

// metaConns is the idle lease connections of every node. It is
// safe for concurrent use.
type metaConns struct {
	mu   sync.Mutex
	idle map[*node][]*metaConn
}

type metaConn struct {
	net.Conn
	r *bufio.Reader
}

// takeMetaConn returns an idle connection to n, or dials one; reused says
// which. The dial is bounded by the timeout, and by Close, never by a
// caller's context: a caller giving up is not the node failing.
func (t *Tier) takeMetaConn(n *node) (c *metaConn, reused bool, err error) {
	m := &t.meta
	m.mu.Lock()
	if idle := m.idle[n]; len(idle) > 0 {
		c = idle[len(idle)-1]
		m.idle[n] = idle[:len(idle)-1]
		m.mu.Unlock()
		return c, true, nil
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.bgCtx, t.cfg.timeout)
	defer cancel()
	nc, err := t.dialNode(ctx, n)
	if err != nil {
		return nil, false, err
	}
	return &metaConn{Conn: nc, r: bufio.NewReaderSize(nc, 4<<10)}, false, nil
}

// putMetaConn keeps c for n's next request, or closes it when n has
// enough idle ones or the Tier is closed.
func (t *Tier) putMetaConn(n *node, c *metaConn) {
	m := &t.meta
	m.mu.Lock()
	if !t.closed.Load() && !n.retired.Load() && len(m.idle[n]) < t.maxIdleConns {
		if m.idle == nil {
			m.idle = make(map[*node][]*metaConn)
		}
		m.idle[n] = append(m.idle[n], c)
		c = nil
	}
	m.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// metaRoundTrip writes req to n and reads its replies with read, which
// must read exactly the replies req asks for and start afresh each time it
// is called: a pooled connection that the server had closed (memcached
// restarted) is dropped and the request sent again on the next one, as
// retried does for gomemcache's. Any other failure closes the connection
// and returns an error wrapping ErrUnavailable; replies that say the
// server refused a command are read's to interpret.
func (t *Tier) metaRoundTrip(op string, n *node, req []byte, read func(*bufio.Reader) error) error {
	for attempt := 0; ; attempt++ {
		c, reused, err := t.takeMetaConn(n)
		if err != nil {
			t.observe(n, err)
			return t.nodeFail(op, n, err)
		}
		n.stats.requests.Add(1)
		err = c.SetDeadline(time.Now().Add(4 * t.cfg.timeout))
		if err == nil {
			_, err = c.Write(req)
		}
		if err == nil {
			err = read(c.r)
		}
		if err == nil {
			t.putMetaConn(n, c)
			t.observe(n, nil)
			return nil
		}
		c.Close()
		if reused && staleConn(err) && attempt <= t.maxIdleConns && !t.closed.Load() {
			// The server restarted, perhaps as another version: ask it
			// again which protocol it speaks, from the next operation on.
			t.forgetProtocol(n)
			t.stats.retries.Add(1)
			continue
		}
		t.observe(n, err)
		return t.nodeFail(op, n, err)
	}
}

// metaReply is one reply to a meta command.
type metaReply struct {
	// code is VA, HD, EN, NF, NS, EX or MN; SERVER_ERROR for a command the
	// server could not carry out (the connection stays usable).
	code   string
	value  []byte // VA: the item's value, a copy
	cas    uint64 // c
	flags  uint32 // f
	ttl    int64  // t: seconds left, -1 for none
	win    bool   // W: this client won the item's lease
	won    bool   // Z: another client already has it
	opaque int    // O; -1 when absent
	msg    string // SERVER_ERROR: the server's text
}

// errProtocol is a reply the stream cannot go on after.
var errProtocol = errors.New("memcached: unexpected reply")

// readMetaReply reads one reply. A CLIENT_ERROR, ERROR or unparsable line
// returns an error wrapping errProtocol: the connection is then unusable.
func readMetaReply(r *bufio.Reader) (metaReply, error) {
	line, err := metaLine(r)
	if err != nil {
		return metaReply{}, err
	}
	if rep, ok := serverError(line); ok {
		return rep, nil
	}
	fields := bytes.Fields(line)
	if len(fields) == 0 {
		return metaReply{}, fmt.Errorf("%w: empty line", errProtocol)
	}
	rep := metaReply{code: string(fields[0]), ttl: -1, opaque: -1}
	flags := fields[1:]
	size := -1
	switch rep.code {
	case "VA":
		if len(fields) < 2 {
			return metaReply{}, fmt.Errorf("%w: %q", errProtocol, line)
		}
		if size, err = strconv.Atoi(string(fields[1])); err != nil || size < 0 {
			return metaReply{}, fmt.Errorf("%w: %q", errProtocol, line)
		}
		flags = fields[2:]
	case "HD", "EN", "NF", "NS", "EX", "MN":
	default:
		return metaReply{}, fmt.Errorf("%w: %q", errProtocol, line)
	}
	for _, f := range flags {
		if err := rep.parseFlag(f); err != nil {
			return metaReply{}, fmt.Errorf("%w: %q: %w", errProtocol, line, err)
		}
	}
	if size >= 0 {
		if rep.value, err = readData(r, size); err != nil {
			return metaReply{}, err
		}
	}
	return rep, nil
}

// serverError parses a SERVER_ERROR line, which both protocols send for a
// command the server could not carry out (the connection stays usable).
func serverError(line []byte) (metaReply, bool) {
	msg, ok := bytes.CutPrefix(line, []byte("SERVER_ERROR"))
	if !ok {
		return metaReply{}, false
	}
	return metaReply{code: "SERVER_ERROR", msg: string(bytes.TrimSpace(msg)), opaque: -1}, true
}

// readData reads an item's size bytes of data and the CRLF after them, and
// returns the data, a copy.
func readData(r *bufio.Reader, size int) ([]byte, error) {
	data := make([]byte, size+2)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		return nil, fmt.Errorf("%w: value of %d bytes not followed by CRLF", errProtocol, size)
	}
	return data[:size], nil
}

func (rep *metaReply) parseFlag(f []byte) error {
	if len(f) == 0 {
		return nil
	}
	arg := string(f[1:])
	var err error
	switch f[0] {
	case 'c':
		rep.cas, err = strconv.ParseUint(arg, 10, 64)
	case 'f':
		var v uint64
		v, err = strconv.ParseUint(arg, 10, 32)
		rep.flags = uint32(v)
	case 't':
		rep.ttl, err = strconv.ParseInt(arg, 10, 64)
	case 'O':
		rep.opaque, err = strconv.Atoi(arg)
	case 'W':
		rep.win = true
	case 'Z':
		rep.won = true
	}
	return err
}

// appendMetaSet appends "ms <wire> <len> <flags...>\r\n<value>\r\n".
func appendMetaSet(buf []byte, wire string, value []byte, flags ...string) []byte {
	buf = append(buf, "ms "...)
	buf = append(buf, wire...)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, int64(len(value)), 10)
	for _, f := range flags {
		buf = append(buf, ' ')
		buf = append(buf, f...)
	}
	buf = append(buf, "\r\n"...)
	buf = append(buf, value...)
	return append(buf, "\r\n"...)
}
