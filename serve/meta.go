package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// The meta protocol: mg, ms, md, ma (mn is answered by the dispatcher).
// Flags are single letters, some with a token ("T30", "Oabc"); the return
// flags a client asks for come back in the order it asked.

// metaFlags are one meta command's flags.
type metaFlags struct {
	seen    [128]bool
	ret     []byte // return flags asked for, in order
	base64  bool   // b: the key is base64
	quiet   bool   // q
	value   bool   // v
	opaque  []byte // O
	hasTTL  bool   // T
	ttl     int64
	hasViv  bool // N (ma: create on miss)
	viv     int64
	compare uint64 // C; 0 when not given
	flags   uint32 // F
	mode    byte   // M
	delta   uint64 // D
	initial uint64 // J
}

// maxOpaque is memcached's limit on an opaque token.
const maxOpaque = 32

// metaFlagLetters are the flags the server knows. As memcached does, every
// meta command accepts all of them and ignores those that mean nothing to
// it ("mg k F5" is a plain mg); a letter outside them is an invalid flag.
// Flags memcached has and this server does not (E, h, I, l, R, S, x) are
// refused rather than silently ignored.
const metaFlagLetters = "bcCDfFJkMNOqstTuv"

// parseMetaFlags reads toks as flags. msg is the CLIENT_ERROR text of the
// first problem, "" when none.
func parseMetaFlags(toks [][]byte) (f metaFlags, msg string) {
	f.delta = 1
	for _, t := range toks {
		flag, arg := t[0], t[1:]
		if flag >= 128 || !strings.ContainsRune(metaFlagLetters, rune(flag)) {
			return f, "invalid flag"
		}
		if f.seen[flag] {
			return f, "duplicate flag"
		}
		f.seen[flag] = true
		var err error
		switch flag {
		case 'b':
			f.base64 = true
		case 'c', 'f', 'k', 's', 't':
			f.ret = append(f.ret, flag)
		case 'O':
			if len(arg) > maxOpaque {
				return f, "opaque token too long"
			}
			f.opaque = arg
			f.ret = append(f.ret, flag)
		case 'q':
			f.quiet = true
		case 'v':
			f.value = true
		case 'u':
			// No LRU bump: meaningless here, accepted.
		case 'T', 'N':
			var n int64
			if n, err = strconv.ParseInt(string(arg), 10, 64); err != nil {
				return f, "bad token in command line format"
			}
			if flag == 'T' {
				f.hasTTL, f.ttl = true, n
			} else {
				f.hasViv, f.viv = true, n
			}
		case 'C':
			f.compare, err = strconv.ParseUint(string(arg), 10, 64)
		case 'F':
			var v uint64
			v, err = strconv.ParseUint(string(arg), 10, 32)
			f.flags = uint32(v)
		case 'M':
			if len(arg) != 1 {
				return f, "bad token in command line format"
			}
			f.mode = arg[0]
		case 'D':
			f.delta, err = strconv.ParseUint(string(arg), 10, 64)
		case 'J':
			f.initial, err = strconv.ParseUint(string(arg), 10, 64)
		}
		if err != nil {
			return f, badFormat
		}
	}
	return f, ""
}

// metaKey returns the key a meta command names, decoded when b was given.
func metaKey(tok []byte, b64 bool) (string, bool) {
	if !b64 {
		return string(tok), validKey(tok)
	}
	k, err := base64.StdEncoding.DecodeString(string(tok))
	if err != nil {
		return "", false
	}
	return string(k), validKey(k)
}

// metaReturn writes the return flags asked for. it is nil on a miss, when
// only O and k (and b) come back.
func (c *conn) metaReturn(f *metaFlags, keyTok []byte, it *Item) {
	for _, flag := range f.ret {
		if it == nil && flag != 'O' && flag != 'k' {
			continue
		}
		c.w.WriteByte(' ')
		c.w.WriteByte(flag)
		switch flag {
		case 'O':
			c.w.Write(f.opaque)
		case 'k':
			c.w.Write(c.returnedKey(f, keyTok, it != nil))
		case 'f':
			c.writeUint(uint64(it.Flags))
		case 's':
			c.writeUint(uint64(len(it.Value)))
		case 'c':
			c.writeUint(it.CAS)
		case 't':
			c.writeInt(ttlOf(time.Now(), it.Expires))
		}
	}
	if f.base64 && f.seen['k'] && !c.keyDecoded {
		// memcached marks a returned key as base64 after the other flags.
		c.w.WriteString(" b")
	}
	c.w.WriteString("\r\n")
}

// returnedKey is the key k returns. On a miss it is the token as sent; on a
// hit, memcached returns the key itself, in base64 only when it is not
// printable.
func (c *conn) returnedKey(f *metaFlags, keyTok []byte, hit bool) []byte {
	c.keyDecoded = false
	if !f.base64 || !hit {
		return keyTok
	}
	k, err := base64.StdEncoding.DecodeString(string(keyTok))
	if err != nil || !printable(k) {
		return keyTok
	}
	c.keyDecoded = true
	return k
}

// printable reports whether a key can be written as it is.
func printable(k []byte) bool {
	for _, ch := range k {
		if ch <= ' ' || ch >= 0x7f {
			return false
		}
	}
	return true
}

// metaHeader reads "<cmd> <key> <flags>*" for mg, md and ma, and answers
// the line's mistakes itself: ok is false then.
func (c *conn) metaHeader(toks [][]byte) (f metaFlags, key string, ok bool) {
	if len(toks) < 2 {
		c.errorReply()
		return f, "", false
	}
	f, msg := parseMetaFlags(toks[2:])
	if msg != "" {
		c.clientError(msg)
		return f, "", false
	}
	key, ok = metaKey(toks[1], f.base64)
	if !ok {
		c.clientError(badFormat)
	}
	return f, key, ok
}

// metaGet answers "mg <key> <flags>*".
func (c *conn) metaGet(ctx context.Context, toks [][]byte) {
	f, key, ok := c.metaHeader(toks)
	if !ok {
		return
	}
	var (
		it    Item
		found bool
		err   error
	)
	if f.hasTTL {
		it, found, err = c.s.touch(ctx, key, expiryOf(time.Now(), f.ttl))
	} else {
		var got []fetched
		got, err = c.s.fetch(ctx, [][]byte{[]byte(key)})
		if err == nil {
			it, found = got[0].item, got[0].found
		}
	}
	if err != nil {
		c.serverError(err)
		return
	}
	c.countGets([]fetched{{found: found}}, f.hasTTL)
	switch {
	case !found && f.quiet:
	case !found:
		c.w.WriteString("EN")
		c.metaReturn(&f, toks[1], nil)
	case f.value:
		c.w.WriteString("VA ")
		c.writeUint(uint64(len(it.Value)))
		c.metaReturn(&f, toks[1], &it)
		c.w.Write(it.Value)
		c.w.WriteString("\r\n")
	default:
		c.w.WriteString("HD")
		c.metaReturn(&f, toks[1], &it)
	}
}

// metaSetModes are ms's M tokens.
var metaSetModes = map[byte]storeMode{'S': modeSet, 's': modeSet, 'E': modeAdd, 'e': modeAdd,
	'R': modeReplace, 'r': modeReplace, 'A': modeAppend, 'a': modeAppend, 'P': modePrepend, 'p': modePrepend}

// metaSet answers "ms <key> <datalen> <flags>*" and its data block.
func (c *conn) metaSet(ctx context.Context, toks [][]byte) {
	if len(toks) < 3 {
		c.clientError(badFormat)
		return
	}
	size, err := strconv.ParseInt(string(toks[2]), 10, 64)
	if err != nil || size < 0 {
		c.clientError(badFormat)
		return
	}
	f, msg := parseMetaFlags(toks[3:])
	mode := modeSet
	if msg == "" && f.mode != 0 {
		var ok bool
		if mode, ok = metaSetModes[f.mode]; !ok {
			msg = "invalid mode for ms M token"
		}
	}
	key, ok := metaKey(toks[1], f.base64)
	if msg == "" && !ok {
		msg = badFormat
	}
	if size > int64(c.s.cfg.maxValue) || msg != "" {
		// memcached reads past the data of a command it refuses once the
		// length is known.
		if msg != "" {
			c.clientError(msg)
		} else {
			c.s.stats.tooLarge.Add(1)
			c.w.WriteString("SERVER_ERROR object too large for cache\r\n")
		}
		if c.swallow(size) != nil {
			c.quit = true
		}
		return
	}
	// The tokens point into the read buffer, which reading the data block
	// may overwrite: keep what the reply needs.
	keyTok, opaque := bytes.Clone(toks[1]), bytes.Clone(f.opaque)
	f.opaque = opaque
	value, ok := c.readData(int(size))
	if !ok {
		return
	}
	var expires time.Time
	if f.hasTTL {
		expires = expiryOf(time.Now(), f.ttl)
	}
	c.s.stats.cmdSet.Add(1)
	res, cas, err := c.s.store(ctx, mode, key, Item{Value: value, Flags: f.flags, Expires: expires}, f.compare)
	if err != nil {
		c.storeError(err)
		return
	}
	if f.compare != 0 {
		c.s.stats.countCAS(res)
	}
	c.metaStatus(&f, keyTok, res, &Item{CAS: cas})
}

// metaStatus writes HD, NS, EX or NF with the return flags; q hides HD.
func (c *conn) metaStatus(f *metaFlags, keyTok []byte, res storeResult, it *Item) {
	if res == resStored && f.quiet {
		return
	}
	c.w.WriteString([...]string{"HD", "NS", "EX", "NF"}[res])
	if res != resStored {
		it = nil
	}
	c.metaReturn(f, keyTok, it)
}

// metaDelete answers "md <key> <flags>*".
func (c *conn) metaDelete(ctx context.Context, toks [][]byte) {
	f, key, ok := c.metaHeader(toks)
	if !ok {
		return
	}
	res, err := c.s.remove(ctx, key, f.compare)
	if err != nil {
		c.storeError(err)
		return
	}
	if res == resStored {
		c.s.stats.deleteHits.Add(1)
	} else {
		c.s.stats.deleteMisses.Add(1)
	}
	c.metaStatus(&f, toks[1], res, nil)
}

// metaArith answers "ma <key> <flags>*".
func (c *conn) metaArith(ctx context.Context, toks [][]byte) {
	f, key, ok := c.metaHeader(toks)
	if !ok {
		return
	}
	decr := false
	switch f.mode {
	case 0, 'I', 'i', '+':
	case 'D', 'd', '-':
		decr = true
	default:
		c.clientError("invalid mode for ma M token")
		return
	}
	viv := vivify{on: f.hasViv, initial: f.initial, expires: expiryOf(time.Now(), f.viv)}
	a, res, err := c.s.incr(ctx, key, f.delta, decr, viv, f.compare)
	if err != nil {
		if errors.Is(err, errNonNumeric) {
			c.clientError(errNonNumeric.Error())
			return
		}
		c.storeError(err)
		return
	}
	c.s.stats.countArith(decr, res == resStored)
	if res != resStored || !f.value {
		c.metaStatus(&f, toks[1], res, &a.item)
		return
	}
	c.num = strconv.AppendUint(c.num[:0], a.value, 10)
	n := string(c.num)
	c.w.WriteString("VA ")
	c.writeUint(uint64(len(n)))
	c.metaReturn(&f, toks[1], &a.item)
	c.w.WriteString(n)
	c.w.WriteString("\r\n")
}
