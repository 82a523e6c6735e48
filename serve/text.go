package serve

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// The classic text protocol: get, gets, gat, gats, the storage commands,
// delete, touch, incr, decr, verbosity, flush_all. Replies and error texts
// are memcached 1.6's.

const badFormat = "bad command line format"

// storeModes are the storage commands' modes; cas is a set with a compare.
var storeModes = map[string]storeMode{"set": modeSet, "cas": modeSet, "add": modeAdd,
	"replace": modeReplace, "append": modeAppend, "prepend": modePrepend}

// validKey reports whether memcached would accept k as a key.
func validKey(k []byte) bool { return len(k) > 0 && len(k) <= maxKeyLen }

// noreply reports whether the last token asks for no reply.
func noreply(toks [][]byte) bool { return string(toks[len(toks)-1]) == "noreply" }

// get answers get, gets (withCAS), gat and gats (touch: the first argument
// is the new exptime).
func (c *conn) get(ctx context.Context, toks [][]byte, withCAS, touch bool) {
	keys := toks[1:]
	var expires time.Time
	if touch {
		if len(keys) == 0 {
			c.errorReply()
			return
		}
		exptime, err := strconv.ParseInt(string(keys[0]), 10, 64)
		if err != nil {
			c.clientError("invalid exptime argument")
			return
		}
		expires = expiryOf(time.Now(), exptime)
		keys = keys[1:]
	} else if len(keys) == 0 {
		c.errorReply()
		return
	}
	for _, k := range keys {
		if !validKey(k) {
			c.clientError(badFormat)
			return
		}
	}
	var (
		got []fetched
		err error
	)
	if touch {
		got, err = c.touchAll(ctx, keys, expires)
	} else {
		got, err = c.s.fetch(ctx, keys)
	}
	if err != nil {
		c.serverError(err)
		return
	}
	c.countGets(got, touch)
	for _, f := range got {
		if !f.found {
			continue
		}
		c.w.WriteString("VALUE ")
		c.w.Write(f.key)
		c.w.WriteByte(' ')
		c.writeUint(uint64(f.item.Flags))
		c.w.WriteByte(' ')
		c.writeUint(uint64(len(f.item.Value)))
		if withCAS {
			c.w.WriteByte(' ')
			c.writeUint(f.item.CAS)
		}
		c.w.WriteString("\r\n")
		c.w.Write(f.item.Value)
		c.w.WriteString("\r\n")
	}
	c.w.WriteString("END\r\n")
}

// touchAll is gat's read: each key touched in turn.
func (c *conn) touchAll(ctx context.Context, keys [][]byte, expires time.Time) ([]fetched, error) {
	out := make([]fetched, len(keys))
	for i, k := range keys {
		it, found, err := c.s.touch(ctx, string(k), expires)
		if err != nil {
			return nil, err
		}
		out[i] = fetched{key: k, item: it, found: found}
	}
	return out, nil
}

func (c *conn) countGets(got []fetched, touch bool) {
	var hits int64
	for _, f := range got {
		if f.found {
			hits++
		}
	}
	st := &c.s.stats
	if touch {
		st.cmdTouch.Add(int64(len(got)))
		st.touchHits.Add(hits)
		st.touchMisses.Add(int64(len(got)) - hits)
	}
	st.cmdGet.Add(int64(len(got)))
	st.getHits.Add(hits)
	st.getMisses.Add(int64(len(got)) - hits)
}

// storage answers set, add, replace, append, prepend and cas:
//
//	<cmd> <key> <flags> <exptime> <bytes> [noreply]
//	cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]
func (c *conn) storage(ctx context.Context, toks [][]byte) {
	cmd := string(toks[0])
	want := 5
	if cmd == "cas" {
		want = 6
	}
	if len(toks) != want && len(toks) != want+1 {
		c.errorReply()
		return
	}
	c.noreply = noreply(toks)
	// The tokens point into the read buffer, which reading the data block
	// may overwrite: keep the key.
	key := string(toks[1])
	flags, err1 := strconv.ParseUint(string(toks[2]), 10, 32)
	exptime, err2 := strconv.ParseInt(string(toks[3]), 10, 64)
	size, err3 := strconv.ParseInt(string(toks[4]), 10, 64)
	var compare uint64
	var err4 error
	if cmd == "cas" {
		compare, err4 = strconv.ParseUint(string(toks[5]), 10, 64)
	}
	if !validKey(toks[1]) || err1 != nil || err2 != nil || err3 != nil || err4 != nil || size < 0 {
		c.clientError(badFormat)
		return
	}
	if size > int64(c.s.cfg.maxValue) {
		c.s.stats.tooLarge.Add(1)
		c.reply("SERVER_ERROR object too large for cache\r\n")
		if c.swallow(size) != nil {
			c.quit = true
		}
		return
	}
	value, ok := c.readData(int(size))
	if !ok {
		return
	}
	mode := storeModes[cmd]
	it := Item{Value: value, Flags: uint32(flags), Expires: expiryOf(time.Now(), exptime)}
	c.s.stats.cmdSet.Add(1)
	if cmd == "cas" && compare == 0 {
		// A zero token matches no item; memcached answers EXISTS.
		c.reply("EXISTS\r\n")
		return
	}
	res, _, err := c.s.store(ctx, mode, key, it, compare)
	if err != nil {
		c.storeError(err)
		return
	}
	if cmd == "cas" {
		c.s.stats.countCAS(res)
	}
	c.reply([...]string{"STORED\r\n", "NOT_STORED\r\n", "EXISTS\r\n", "NOT_FOUND\r\n"}[res])
}

// storeError answers a command whose backend refused or failed.
func (c *conn) storeError(err error) {
	switch {
	case errors.Is(err, ErrFlags):
		c.clientError("this key's route keeps values from its source only: flags must be 0")
	case errors.Is(err, tier.ErrTooLarge):
		c.s.stats.tooLarge.Add(1)
		c.reply("SERVER_ERROR object too large for cache\r\n")
	case errors.Is(err, errNonNumeric):
		c.clientError(errNonNumeric.Error())
	default:
		c.serverError(err)
	}
}

// delete answers "delete <key> [0] [noreply]".
func (c *conn) delete(ctx context.Context, toks [][]byte) {
	if len(toks) < 2 || len(toks) > 4 {
		c.errorReply()
		return
	}
	// "delete noreply" deletes the key noreply, out loud.
	c.noreply = len(toks) > 2 && noreply(toks)
	rest := toks[2:]
	if c.noreply {
		rest = rest[:len(rest)-1]
	}
	if len(rest) > 1 || len(rest) == 1 && string(rest[0]) != "0" {
		c.clientError(badFormat + ".  Usage: delete <key> [noreply]")
		return
	}
	if !validKey(toks[1]) {
		c.clientError(badFormat)
		return
	}
	res, err := c.s.remove(ctx, string(toks[1]), 0)
	if err != nil {
		c.storeError(err)
		return
	}
	if res == resStored {
		c.s.stats.deleteHits.Add(1)
		c.reply("DELETED\r\n")
		return
	}
	c.s.stats.deleteMisses.Add(1)
	c.reply("NOT_FOUND\r\n")
}

// touchCmd answers "touch <key> <exptime> [noreply]".
func (c *conn) touchCmd(ctx context.Context, toks [][]byte) {
	if len(toks) != 3 && len(toks) != 4 {
		c.errorReply()
		return
	}
	c.noreply = noreply(toks)
	exptime, err := strconv.ParseInt(string(toks[2]), 10, 64)
	if err != nil {
		c.clientError("invalid exptime argument")
		return
	}
	if !validKey(toks[1]) {
		c.clientError(badFormat)
		return
	}
	_, found, err := c.s.touch(ctx, string(toks[1]), expiryOf(time.Now(), exptime))
	if err != nil {
		c.storeError(err)
		return
	}
	c.s.stats.cmdTouch.Add(1)
	if found {
		c.s.stats.touchHits.Add(1)
		c.reply("TOUCHED\r\n")
		return
	}
	c.s.stats.touchMisses.Add(1)
	c.reply("NOT_FOUND\r\n")
}

// arith answers "incr|decr <key> <delta> [noreply]".
func (c *conn) arith(ctx context.Context, toks [][]byte) {
	if len(toks) != 3 && len(toks) != 4 {
		c.errorReply()
		return
	}
	c.noreply = noreply(toks)
	if !validKey(toks[1]) {
		c.clientError(badFormat)
		return
	}
	delta, err := strconv.ParseUint(string(toks[2]), 10, 64)
	if err != nil {
		c.clientError("invalid numeric delta argument")
		return
	}
	decr := string(toks[0]) == "decr"
	a, res, err := c.s.incr(ctx, string(toks[1]), delta, decr, vivify{}, 0)
	if err != nil {
		c.storeError(err)
		return
	}
	c.s.stats.countArith(decr, res == resStored)
	if res == resNotFound {
		c.reply("NOT_FOUND\r\n")
		return
	}
	if !c.noreply {
		c.writeUint(a.value)
		c.w.WriteString("\r\n")
	}
}

// verbosity answers "verbosity <level> [noreply]": accepted and ignored
// (the server's log level is its configuration's).
func (c *conn) verbosity(toks [][]byte) {
	if len(toks) != 2 && len(toks) != 3 {
		c.errorReply()
		return
	}
	c.noreply = noreply(toks)
	c.reply("OK\r\n")
}

// flushAll refuses flush_all: the memcached pool behind the server is
// shared with the read-through routes and with other processes, and
// emptying it is an operator's decision, not a client's.
func (c *conn) flushAll() {
	c.s.stats.protocolErrors.Add(1)
	c.w.WriteString("SERVER_ERROR flush_all is not supported by this server\r\n")
}
