package serve

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"time"
)

// The operations behind the commands, shared by the text and the meta
// protocol. Each takes the client's key and finds its Backend.

// storeMode is what a storage command does with the key's current item.
type storeMode uint8

const (
	modeSet storeMode = iota
	modeAdd
	modeReplace
	modeAppend
	modePrepend
)

// storeResult is a storage command's outcome, as both protocols name it.
type storeResult uint8

const (
	resStored    storeResult = iota // STORED, HD
	resNotStored                    // NOT_STORED, NS
	resExists                       // EXISTS, EX: the CAS did not match
	resNotFound                     // NOT_FOUND, NF
)

// fetched is one key's answer to a multi-key read, in request order.
type fetched struct {
	key   []byte // the client's key, as sent
	item  Item
	found bool
}

// fetch reads keys through their backends, one Get per backend, and
// returns them in request order (a key asked twice is answered twice, as
// memcached does). The error is the first a backend returned.
func (s *Server) fetch(ctx context.Context, keys [][]byte) ([]fetched, error) {
	type group struct {
		b    Backend
		keys []string
		got  map[string]Item
	}
	var groups []*group
	out := make([]fetched, len(keys))
	where := make([]struct {
		g   *group
		key string
	}, len(keys))
	for i, k := range keys {
		_, b, bk := s.router.routeOf(string(k))
		var g *group
		for _, have := range groups {
			if have.b == b {
				g = have
			}
		}
		if g == nil {
			g = &group{b: b}
			groups = append(groups, g)
		}
		g.keys = append(g.keys, bk)
		where[i].g, where[i].key = g, bk
		out[i].key = k
	}
	var firstErr error
	for _, g := range groups {
		var err error
		g.got, err = g.b.Get(ctx, g.keys)
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for i := range out {
		out[i].item, out[i].found = where[i].g.got[where[i].key]
	}
	return out, firstErr
}

// getOne reads one key of b.
func getOne(ctx context.Context, b Backend, key string) (Item, bool, error) {
	m, err := b.Get(ctx, []string{key})
	it, ok := m[key]
	return it, ok, err
}

// store runs a storage command. compare, when not 0, is the CAS the item
// must have (cas, ms C). The returned CAS is the stored item's.
func (s *Server) store(ctx context.Context, mode storeMode, key string, it Item, compare uint64) (storeResult, uint64, error) {
	_, b, bk := s.router.routeOf(key)
	defer s.locks.lock(key)()
	if compare == 0 {
		switch mode {
		case modeSet:
			cas, err := b.Set(ctx, bk, it)
			return resStored, cas, err
		case modeAdd:
			if a, ok := b.(Adder); ok {
				cas, err := a.Add(ctx, bk, it)
				if errors.Is(err, ErrNotStored) {
					return resNotStored, 0, nil
				}
				return resStored, cas, err
			}
		}
	}
	cur, found, err := getOne(ctx, b, bk)
	if err != nil {
		return 0, 0, err
	}
	if compare != 0 {
		switch {
		case !found:
			return resNotFound, 0, nil
		case cur.CAS != compare:
			return resExists, 0, nil
		}
	}
	switch mode {
	case modeAdd:
		if found {
			return resNotStored, 0, nil
		}
	case modeReplace:
		if !found {
			return resNotStored, 0, nil
		}
	case modeAppend, modePrepend:
		if !found {
			return resNotStored, 0, nil
		}
		v := make([]byte, 0, len(cur.Value)+len(it.Value))
		if mode == modeAppend {
			v = append(append(v, cur.Value...), it.Value...)
		} else {
			v = append(append(v, it.Value...), cur.Value...)
		}
		it = Item{Value: v, Flags: cur.Flags, Expires: cur.Expires}
	}
	cas, err := b.Set(ctx, bk, it)
	return resStored, cas, err
}

// remove runs delete (md): compare, when not 0, is the CAS the item must
// have.
func (s *Server) remove(ctx context.Context, key string, compare uint64) (storeResult, error) {
	_, b, bk := s.router.routeOf(key)
	defer s.locks.lock(key)()
	if compare != 0 {
		cur, found, err := getOne(ctx, b, bk)
		switch {
		case err != nil:
			return 0, err
		case !found:
			return resNotFound, nil
		case cur.CAS != compare:
			return resExists, nil
		}
	}
	found, err := b.Delete(ctx, bk)
	if err != nil {
		return 0, err
	}
	if !found {
		return resNotFound, nil
	}
	return resStored, nil
}

// touch gives key a new expiry and returns its item.
func (s *Server) touch(ctx context.Context, key string, expires time.Time) (Item, bool, error) {
	_, b, bk := s.router.routeOf(key)
	if t, ok := b.(Toucher); ok {
		return t.Touch(ctx, bk, expires)
	}
	defer s.locks.lock(key)()
	cur, found, err := getOne(ctx, b, bk)
	if err != nil || !found {
		return cur, found, err
	}
	cur.Expires = expires
	cur.CAS, err = b.Set(ctx, bk, cur)
	return cur, true, err
}

// errNonNumeric is an incr or decr of a value that is not a number.
var errNonNumeric = errors.New("cannot increment or decrement non-numeric value")

// arith is the outcome of incr and decr (ma).
type arith struct {
	value uint64
	item  Item // as stored
	found bool
}

// vivify is what ma's N and J ask for: create a missing key with initial,
// expiring at expires.
type vivify struct {
	on      bool
	initial uint64
	expires time.Time
}

// incr adds delta to key's number, or takes it away (floored at 0) when
// decr, as memcached does: an unsigned 64-bit decimal that wraps on incr.
// compare, when not 0, is the CAS the item must have.
func (s *Server) incr(ctx context.Context, key string, delta uint64, decr bool, viv vivify, compare uint64) (arith, storeResult, error) {
	_, b, bk := s.router.routeOf(key)
	defer s.locks.lock(key)()
	cur, found, err := getOne(ctx, b, bk)
	if err != nil {
		return arith{}, 0, err
	}
	if !found {
		if !viv.on {
			return arith{}, resNotFound, nil
		}
		it := Item{Value: strconv.AppendUint(nil, viv.initial, 10), Expires: viv.expires}
		it.CAS, err = b.Set(ctx, bk, it)
		return arith{value: viv.initial, item: it, found: true}, resStored, err
	}
	if compare != 0 && cur.CAS != compare {
		return arith{}, resExists, nil
	}
	n, ok := parseCounter(cur.Value)
	if !ok {
		return arith{}, 0, errNonNumeric
	}
	switch {
	case !decr:
		n += delta
	case delta > n:
		n = 0
	default:
		n -= delta
	}
	v := strconv.AppendUint(nil, n, 10)
	for len(v) < len(cur.Value) {
		// memcached rewrites a counter that got shorter in place, padded
		// with spaces; clients see the same bytes here.
		v = append(v, ' ')
	}
	it := Item{Value: v, Flags: cur.Flags, Expires: cur.Expires}
	it.CAS, err = b.Set(ctx, bk, it)
	return arith{value: n, item: it, found: true}, resStored, err
}

// parseCounter reads a stored counter: decimal digits, trailing spaces
// allowed (memcached pads a shrinking counter with them).
func parseCounter(v []byte) (uint64, bool) {
	v = bytes.TrimRight(v, " ")
	if len(v) == 0 || len(v) > 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	return n, err == nil
}

// expiryOf is the absolute expiry of a memcached exptime given at now: 0
// is never; up to 30 days, seconds from now; more, a Unix time; negative,
// already expired.
func expiryOf(now time.Time, exptime int64) time.Time {
	const relativeLimit = 30 * 24 * 60 * 60
	switch {
	case exptime == 0:
		return time.Time{}
	case exptime < 0:
		return now.Add(-time.Second)
	case exptime > relativeLimit:
		return time.Unix(exptime, 0)
	default:
		return now.Add(time.Duration(exptime) * time.Second)
	}
}

// ttlOf is the meta protocol's t: seconds left, -1 for no expiry.
func ttlOf(now, expires time.Time) int64 {
	if expires.IsZero() {
		return -1
	}
	return max(int64(expires.Sub(now).Round(time.Second)/time.Second), 0)
}
