package memcached

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	mcwire "github.com/tiercache/tiercache/store/memcached/internal/wire"
	"github.com/tiercache/tiercache/tier"
)

// Leases on the classic text protocol, for servers without the meta
// commands: twemproxy (nutcracker), and memcached before 1.6.
//
// Lease reads every key of a node in one write (classicGetsKeys keys a
// line):
//
//	gets <key> <key> ...              VALUE <key> <flags> <bytes> <cas> ... END
//
// and sorts the keys as the meta protocol does: a fresh value is a hit; a
// record whose lease is running, or a stub of the meta protocol, is held
// by someone; anything else is to be taken. Those are claimed in one more
// write:
//
//	add <key> <flags> <ttl> <len>          a key that is absent: a record
//	                                       with a lease, living the lease TTL
//	cas <key> <flags> <exp> <len> <cas>    an item to take over: the item
//	                                       rewritten with a lease, if its CAS
//	                                       is still the one read
//	gets <the same keys>
//
// add and cas store for exactly one client (STORED); the others get
// NOT_STORED, EXISTS or NOT_FOUND and report the key held. Neither returns
// the CAS of the item it stored, which the winner needs as its token: the
// gets behind them reads it, since memcached (and twemproxy, towards one
// server) runs a connection's commands in order. Each lease record carries
// a nonce drawn at random, so that the winner knows the item read back for
// its own; another item there means the key was written in between (an
// invalidation), and the lease is reported held. A read back that still
// shows the item from before the claim (a proxy that sent it ahead of the
// claim on another server connection) is read again, once the claim's
// reply is in.
//
// The token is the item's CAS, as on the meta protocol, so Fill is
//
//	cas <key> <flags> <exp> <len> <token>  STORED; EXISTS, NOT_FOUND: lost
//
// and Release a cas too (see Release). Invalidate is the unconditional set
// both protocols share.
//
// gets tells nothing of how long an item has left, so an item taken over
// is kept as long as its entry (without the stale-while-revalidate grace,
// which it no longer knows) and its marker must, and at least until its
// lease ends.

// classicGetsKeys is how many keys one gets line asks for.
const classicGetsKeys = 100

// classicItem is an item as gets returns it.
type classicItem struct {
	answered bool // the gets that asked for it ended with END
	found    bool
	flags    uint32
	value    []byte
	cas      uint64
}

// claim is a lease to be claimed with add (cas 0) or cas.
type claim struct {
	i   int    // the key's index in its leaseBatch
	cas uint64 // the CAS the item was read with; 0 for an absent key
	rec record // the record to store, with a lease and a nonce
	exp int32
}

// classicLeaseOn asks b's node for b's leases on the classic protocol.
func (t *Tier) classicLeaseOn(ctx context.Context, b *leaseBatch, req tier.LeaseRequest) {
	items := make([]classicItem, len(b.wires))
	buf := appendGets(nil, b.wires)
	var refused string
	err := t.roundTrip(ctx, "lease", b.node, &mcwire.Request{Buf: buf, Read: func(r *mcwire.Reader) error {
		var err error
		refused, err = readGets(r, b.wires, items)
		return err
	}})
	if err != nil {
		b.err = err
		return
	}
	if refused != "" {
		b.err = t.refused("lease", b.node, mcwire.Reply{Code: "SERVER_ERROR", Msg: refused})
	}
	var claims []claim
	for i, it := range items {
		switch {
		case !it.answered:
			// Its gets was refused, as b.err says.
		case !it.found:
			rec := record{leaseUntil: req.Now.Add(req.TTL), nonce: newNonce()}
			claims = append(claims, claim{i: i, rec: rec, exp: int32(ceilSeconds(req.TTL))})
		case isStub(it.flags, it.value):
			// A lease of the meta protocol; it ends when the stub expires.
			t.lease.held.Add(1)
			b.leases[i], b.ok[i] = tier.Lease{State: tier.LeaseHeld}, true
		default:
			if rec, ok := t.classify(b, i, it.flags, it.value, req); !ok {
				rec.nonce = newNonce()
				claims = append(claims, claim{i: i, cas: it.cas, rec: rec, exp: t.takeoverExpiration(b.routes[i], rec, req)})
			}
		}
	}
	if len(claims) > 0 {
		t.claim(ctx, b, claims)
	}
}

// claim stores the claims' records, each only if the key is still as it
// was read, and reads the items back, in one round trip; it grants the
// leases whose record it finds there.
func (t *Tier) claim(ctx context.Context, b *leaseBatch, claims []claim) {
	var buf []byte
	wires := make([]string, len(claims))
	for j, c := range claims {
		i := c.i
		it := recordItem(b.keys[i], b.wires[i], b.hashed[i], c.rec, c.exp)
		if c.cas == 0 {
			buf = mcwire.AppendStorage(buf, "add", it, 0)
		} else {
			buf = mcwire.AppendStorage(buf, "cas", it, c.cas)
		}
		wires[j] = b.wires[i]
	}
	buf = appendGets(buf, wires)
	replies := make([]mcwire.Reply, len(claims))
	items := make([]classicItem, len(claims))
	err := t.roundTrip(ctx, "lease", b.node, &mcwire.Request{Buf: buf, Read: func(r *mcwire.Reader) error {
		for j := range replies {
			var err error
			if replies[j], err = readStoreReply(r); err != nil {
				return err
			}
		}
		_, err := readGets(r, wires, items)
		return err
	}})
	if err != nil {
		b.err = errors.Join(b.err, err)
		return
	}
	var early []int // stored, but read back before the claim
	for j, c := range claims {
		it := items[j]
		switch rep := replies[j]; rep.Code {
		case "STORED", "NOT_STORED", "EXISTS", "NOT_FOUND":
			// A claim that was not stored is normally someone else's
			// lease, fill or invalidation, and the next poll will tell
			// which; but the record read back is ours if this claim was
			// sent twice (a connection lost after the server ran it).
			if rep.Code == "STORED" && it.answered && (!it.found || c.cas != 0 && it.cas == c.cas) {
				early = append(early, j)
				continue
			}
			t.grant(b, c, it)
		default:
			b.err = errors.Join(b.err, t.refused("lease", b.node, rep))
		}
	}
	if len(early) > 0 {
		t.readBack(ctx, b, claims, early)
	}
}

// readBack reads again the items of the claims at idx, which were stored
// but read back unchanged, and grants the leases whose record it finds.
func (t *Tier) readBack(ctx context.Context, b *leaseBatch, claims []claim, idx []int) {
	wires := make([]string, len(idx))
	for k, j := range idx {
		wires[k] = b.wires[claims[j].i]
	}
	items := make([]classicItem, len(idx))
	err := t.roundTrip(ctx, "lease", b.node, &mcwire.Request{Buf: appendGets(nil, wires), Read: func(r *mcwire.Reader) error {
		_, err := readGets(r, wires, items)
		return err
	}})
	if err != nil {
		b.err = errors.Join(b.err, err)
		return
	}
	for k, j := range idx {
		t.grant(b, claims[j], items[k])
	}
}

// grant settles the claim c by the item read back after it: the lease is
// won, with the item's CAS as its token, if the item is c's record; held
// otherwise.
func (t *Tier) grant(b *leaseBatch, c claim, it classicItem) {
	i := c.i
	if !it.answered {
		b.err = errors.Join(b.err, t.refused("lease", b.node, mcwire.Reply{Code: "SERVER_ERROR", Msg: "no reply to the read back"}))
		return
	}
	l := tier.Lease{State: tier.LeaseHeld, Entry: c.rec.entry, Marker: c.rec.marker}
	if it.found && it.flags == recordFlags(b.hashed[i]) {
		if rec, err := decodeRecord(b.keys[i], b.hashed[i], it.value); err == nil && rec.nonce == c.rec.nonce {
			l.State, l.Token = tier.LeaseWon, it.cas
		}
	}
	if l.State == tier.LeaseWon {
		t.lease.won.Add(1)
		if c.cas != 0 {
			t.lease.takeovers.Add(1)
		}
	} else {
		t.lease.held.Add(1)
	}
	b.leases[i], b.ok[i] = l, true
}

// takeoverExpiration is the expiration of an item taken over with rec: as
// long as its entry and marker must be kept, and at least until the lease
// ends.
func (t *Tier) takeoverExpiration(r route, rec record, req tier.LeaseRequest) int32 {
	now := t.clock.Now()
	leaseEnd := now.Add(req.TTL)
	if rec.entry == nil && rec.marker.At.IsZero() {
		exp, _ := expiration(now, leaseEnd)
		return exp
	}
	until := t.keepUntil(r, tier.LeaseWrite{Entry: rec.entry, Marker: rec.marker}, now)
	if until.IsZero() {
		return 0 // for ever
	}
	exp, _ := expiration(now, later(until, leaseEnd))
	return exp
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// newNonce draws a lease's nonce: random, never 0.
func newNonce() uint64 {
	for {
		if n := rand.Uint64(); n != 0 {
			return n
		}
	}
}

// appendGets appends gets commands for wires, classicGetsKeys keys a line.
func appendGets(buf []byte, wires []string) []byte {
	for start := 0; start < len(wires); start += classicGetsKeys {
		buf = mcwire.AppendRetrieval(buf, "gets", wires[start:min(start+classicGetsKeys, len(wires))])
	}
	return buf
}

// readGets reads the replies to the gets commands appendGets wrote for
// wires, and puts what it finds in items, by the index of the key in
// wires. A gets answered with SERVER_ERROR leaves its keys unanswered;
// the server's message is returned in refused. Anything else unexpected
// is an error wrapping ErrProtocol: the connection is then unusable.
func readGets(r *mcwire.Reader, wires []string, items []classicItem) (refused string, err error) {
	clear(items) // a round trip tried again reads everything again
	index := make(map[string]int, len(wires))
	for i, w := range wires {
		index[w] = i
	}
	for start := 0; start < len(wires); start += classicGetsKeys {
		end := min(start+classicGetsKeys, len(wires))
		var pieceRefused string
		err := readItems(1, func(rep mcwire.Reply) {
			if i, ok := index[rep.Key]; ok && i >= start && i < end {
				items[i] = classicItem{found: true, flags: rep.Flags, value: rep.Value, cas: rep.CAS}
			}
		}, &pieceRefused)(r)
		if err != nil && refused != "" && mcwire.Stale(err) {
			// nutcracker answers a gets it could not forward (a server
			// behind it down) with SERVER_ERROR, and may then hang up:
			// the proxy itself is alive, which the error says.
			return "", mcwire.Answered(fmt.Errorf("server replied SERVER_ERROR %s, then closed the connection", refused))
		}
		if err != nil {
			return "", err
		}
		if pieceRefused != "" {
			refused = pieceRefused
			continue
		}
		for i := start; i < end; i++ {
			items[i].answered = true
		}
	}
	return refused, nil
}

// readStoreReply reads the reply to a classic storage command: STORED,
// NOT_STORED, EXISTS or NOT_FOUND as its code, or SERVER_ERROR and the
// server's message (the connection stays usable). ERROR, CLIENT_ERROR or
// anything else is an error wrapping ErrProtocol.
func readStoreReply(r *mcwire.Reader) (mcwire.Reply, error) {
	rep, err := r.Next()
	if err != nil {
		return rep, err
	}
	switch rep.Code {
	case "STORED", "NOT_STORED", "EXISTS", "NOT_FOUND", "SERVER_ERROR":
		return rep, nil
	}
	return mcwire.Reply{}, fmt.Errorf("%w: %s to a storage command", mcwire.ErrProtocol, rep.Code)
}
