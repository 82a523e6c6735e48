package wire

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// Reader reads memcached replies from a connection. It is used by one
// goroutine at a time: the connection's reader, through a request's read
// function.
type Reader struct {
	br *bufio.Reader
}

// NewReader returns a Reader over r.
func NewReader(r io.Reader) *Reader { return &Reader{br: bufio.NewReaderSize(r, 16<<10)} }

// Reply is one reply, meta or classic. Code is its first word: VA, HD, EN,
// NF, NS, EX, MN (meta); VALUE, END, STORED, NOT_STORED, EXISTS,
// NOT_FOUND, DELETED, TOUCHED, OK, VERSION, STAT, CONFIG (classic); or
// SERVER_ERROR, CLIENT_ERROR, ERROR.
type Reply struct {
	Code string
	// Key is a VALUE or CONFIG reply's key, a STAT reply's name.
	Key string
	// Value is the data of VA, VALUE and CONFIG (a copy), a STAT reply's
	// value.
	Value []byte
	// Msg is the text after SERVER_ERROR, CLIENT_ERROR or VERSION.
	Msg    string
	Size   int    // the length of the data announced by VA, VALUE, CONFIG
	Flags  uint32 // f, or a VALUE's flags
	CAS    uint64 // c, or a gets VALUE's CAS
	TTL    int64  // t: seconds left, -1 for none or not asked
	Win    bool   // W: this client won the item's lease
	Won    bool   // Z: another client already has it
	Opaque int    // O; -1 when absent
}

// Refused reports whether the reply is SERVER_ERROR: the server could not
// carry out a command it understood, and the connection stays usable.
func (r Reply) Refused() bool { return r.Code == "SERVER_ERROR" }

// TooLarge reports whether the reply is memcached refusing an item larger
// than its item size limit (-I).
func (r Reply) TooLarge() bool {
	return r.Code == "SERVER_ERROR" && bytes.Contains([]byte(r.Msg), []byte("object too large"))
}

// Line reads one line without its CRLF; a line that does not end with
// CRLF is an error wrapping ErrProtocol. It is valid until the next read.
func (r *Reader) Line() ([]byte, error) {
	line, err := r.RawLine()
	if err != nil {
		return nil, err
	}
	body, ok := bytes.CutSuffix(line, []byte("\r\n"))
	if !ok {
		return nil, fmt.Errorf("%w: line %.40q not ended by CRLF", ErrProtocol, line)
	}
	return body, nil
}

// RawLine reads one line up to and including its LF, for replies whose
// lines are not all memcached's (discovery's). It is valid until the next
// read.
func (r *Reader) RawLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, fmt.Errorf("%w: reply line longer than %d bytes", ErrProtocol, r.br.Size())
	}
	return line, err
}

// ReadFull reads exactly len(p) bytes.
func (r *Reader) ReadFull(p []byte) error {
	_, err := io.ReadFull(r.br, p)
	return err
}

// Next reads one reply, with its data and the CRLF after them. A line it
// cannot parse is an error wrapping ErrProtocol: the stream can no longer
// be trusted.
func (r *Reader) Next() (Reply, error) {
	rep, err := r.NextHeader()
	if err == nil && rep.Size >= 0 {
		err = r.data(&rep)
	}
	return rep, err
}

// NextHeader reads one reply's line, but not the data it announces (Size
// bytes), for a reply whose data the caller reads itself.
func (r *Reader) NextHeader() (Reply, error) {
	line, err := r.Line()
	if err != nil {
		return Reply{}, err
	}
	return parse(line)
}

func parse(line []byte) (Reply, error) {
	rep := Reply{TTL: -1, Opaque: -1, Size: -1}
	code, rest, _ := bytes.Cut(line, []byte(" "))
	rep.Code = string(code)
	bad := func() (Reply, error) { return Reply{}, fmt.Errorf("%w: %.80q", ErrProtocol, line) }
	switch rep.Code {
	case "SERVER_ERROR", "CLIENT_ERROR", "VERSION":
		rep.Msg = string(bytes.TrimSpace(rest))
		return rep, nil
	case "ERROR", "END", "STORED", "NOT_STORED", "EXISTS", "NOT_FOUND", "DELETED", "TOUCHED", "OK":
		return rep, nil
	case "STAT":
		name, value, ok := bytes.Cut(rest, []byte(" "))
		if !ok {
			return bad()
		}
		rep.Key, rep.Value = string(name), bytes.Clone(value)
		return rep, nil
	case "VALUE", "CONFIG":
		// VALUE <key> <flags> <bytes> [<cas>]; CONFIG <key> <flags> <bytes>
		var fields [5][]byte
		f := fields[:0]
		for len(rest) > 0 && len(f) < len(fields) {
			var tok []byte
			tok, rest, _ = bytes.Cut(rest, []byte(" "))
			if len(tok) > 0 {
				f = append(f, tok)
			}
		}
		if len(rest) > 0 || len(f) != 3 && !(len(f) == 4 && rep.Code == "VALUE") {
			return bad()
		}
		flags, err1 := strconv.ParseUint(string(f[1]), 10, 32)
		size, err2 := strconv.ParseUint(string(f[2]), 10, 31)
		if err1 != nil || err2 != nil {
			return bad()
		}
		if len(f) == 4 {
			cas, err := strconv.ParseUint(string(f[3]), 10, 64)
			if err != nil {
				return bad()
			}
			rep.CAS = cas
		}
		rep.Key, rep.Flags, rep.Size = string(f[0]), uint32(flags), int(size)
		return rep, nil
	case "VA":
		sizeField, flags, _ := bytes.Cut(rest, []byte(" "))
		size, err := strconv.ParseUint(string(sizeField), 10, 31)
		if err != nil {
			return bad()
		}
		if err := rep.metaFlags(flags); err != nil {
			return bad()
		}
		rep.Size = int(size)
		return rep, nil
	case "HD", "EN", "NF", "NS", "EX", "MN":
		if err := rep.metaFlags(rest); err != nil {
			return bad()
		}
		return rep, nil
	}
	return bad()
}

// data reads rep.Size bytes of data and the CRLF after them into
// rep.Value.
func (r *Reader) data(rep *Reply) error {
	size := rep.Size
	buf := make([]byte, size+2)
	if err := r.ReadFull(buf); err != nil {
		return err
	}
	if !bytes.HasSuffix(buf, []byte("\r\n")) {
		return fmt.Errorf("%w: %d bytes of data not followed by CRLF", ErrProtocol, size)
	}
	rep.Value = buf[:size:size]
	return nil
}

// metaFlags parses a meta reply's flags.
func (rep *Reply) metaFlags(flags []byte) error {
	for len(flags) > 0 {
		var f []byte
		f, flags, _ = bytes.Cut(flags, []byte(" "))
		if len(f) == 0 {
			continue
		}
		arg := string(f[1:])
		var err error
		switch f[0] {
		case 'c':
			rep.CAS, err = strconv.ParseUint(arg, 10, 64)
		case 'f':
			var v uint64
			v, err = strconv.ParseUint(arg, 10, 32)
			rep.Flags = uint32(v)
		case 't':
			rep.TTL, err = strconv.ParseInt(arg, 10, 64)
		case 'O':
			rep.Opaque, err = strconv.Atoi(arg)
		case 'W':
			rep.Win = true
		case 'Z':
			rep.Won = true
		}
		if err != nil {
			return err
		}
	}
	return nil
}
