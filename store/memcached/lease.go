package memcached

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mcwire "github.com/tiercache/tiercache/store/memcached/internal/wire"
	"github.com/tiercache/tiercache/tier"
)

// Leases (tier.Leaser) on memcached's meta protocol. Nodes that do not
// speak it use the classic protocol instead (leaseclassic.go; which one,
// leaseproto.go); Invalidate is the same for both.
//
// Lease sends, for every key of a node, in one write:
//
//	mg <key> N<ttl> c f t v O<i>      (per key, then)
//	mn
//
// On a miss memcached creates an empty item living <ttl> seconds (a stub)
// and answers W to exactly one client, Z to every later one until the stub
// is replaced or expires: the lease and its expiry, done by the server.
// For a key that holds an item, the reply is the item with its CAS:
//
//	a fresh value                     a hit
//	a record whose lease is running   held by someone else
//	anything else                     taken over (see below)
//
// "Anything else" is an expired value (kept for stale-while-revalidate), a
// record with only a marker (a Set or Delete happened), a record whose
// lease ran out (its holder died), or, for a Refresh request, the fresh
// value itself (unless it was loaded after the value the request means to
// replace: someone else's refresh, a hit). The lease over it is taken by rewriting it with a lease,
// conditional on its CAS, pipelined the same way, which exactly one
// client can do:
//
//	ms <key> <len> C<cas> T<ttl left> F<flags> c O<i>    HD c<new>: won; EX, NF: held
//
// Either way the lease's token is the CAS of the item that holds it. The
// winner's Fill is "ms <key> <len> C<token> T<ttl> F<flags>": any write to
// the key since (an invalidation, a takeover) changed the CAS or removed
// the item, and the fill is refused (EX, NF) instead of landing. Release
// is "md <key> C<token>" for a stub, or the record without its lease. A
// lease taken over an item keeps the item at least as long as the lease.
// Invalidate is an unconditional set of a record carrying the marker (and
// the new value for Set), kept as long as the marker must be.

var _ tier.Leaser = (*Tier)(nil)

// errLeaseLost is a fill refused because its lease is gone.
var errLeaseLost = fmt.Errorf("memcached: fill: %w", tier.ErrLeaseLost)

// leaseCounters are the lease operations' counts (see Counters).
type leaseCounters struct {
	keys, won, held, takeovers, fills, refused, releases, markers atomic.Int64
	probes, probeErrors                                           atomic.Int64 // leaseproto.go
}

func (c *leaseCounters) addCounters(m map[string]int64) {
	m["lease_keys"] = c.keys.Load()
	m["leases_won"] = c.won.Load()
	m["leases_held"] = c.held.Load()
	m["lease_takeovers"] = c.takeovers.Load()
	m["lease_fills"] = c.fills.Load()
	m["lease_fills_refused"] = c.refused.Load()
	m["lease_releases"] = c.releases.Load()
	m["markers"] = c.markers.Load()
	m["lease_protocol_probes"] = c.probes.Load()
	m["lease_protocol_probe_errors"] = c.probeErrors.Load()
}

// leaseBatch is the part of a Lease call that goes to one node.
type leaseBatch struct {
	node   *node
	keys   []string
	wires  []string
	hashed []bool
	routes []route
	leases []tier.Lease
	ok     []bool
	err    error
}

// Lease implements tier.Leaser with one pipelined round trip per node, two
// for a node where a lease is taken over an existing item (on the classic
// protocol: one, and two where a lease is won). Keys of a node that is
// down or fails are absent from the map, and the error, wrapping
// ErrUnavailable, says so.
func (t *Tier) Lease(ctx context.Context, keys []string, req tier.LeaseRequest) (map[string]tier.Lease, error) {
	if err := t.ready(ctx, "lease"); err != nil {
		return nil, err
	}
	snap := t.members.current.Load()
	var (
		batches []*leaseBatch
		byNode  = make(map[*node]*leaseBatch)
		seen    = make(map[string]bool, len(keys))
		errs    []error
	)
	for _, key := range keys {
		if seen[key] {
			continue
		}
		seen[key] = true
		wire, hashed := t.encodeKey(key)
		r, err := snap.route(wire)
		if err != nil {
			if len(errs) == 0 {
				errs = append(errs, t.unroutable("lease", err))
			}
			continue
		}
		b := byNode[r.owner]
		if b == nil {
			b = &leaseBatch{node: r.owner}
			byNode[r.owner] = b
			batches = append(batches, b)
		}
		b.keys = append(b.keys, key)
		b.wires = append(b.wires, wire)
		b.hashed = append(b.hashed, hashed)
		b.routes = append(b.routes, r)
	}
	t.lease.keys.Add(int64(len(seen)))
	one := func(b *leaseBatch) {
		b.leases, b.ok = make([]tier.Lease, len(b.keys)), make([]bool, len(b.keys))
		if !b.node.isUp() {
			b.err = t.skip(b.node)
			return
		}
		switch p, err := t.leaseProtocol(b.node); {
		case err != nil:
			b.err = err
		case p == protoClassic:
			t.classicLeaseOn(ctx, b, req)
		default:
			t.leaseOn(ctx, b, req)
		}
	}
	if len(batches) == 1 {
		one(batches[0])
	} else {
		var wg sync.WaitGroup
		for _, b := range batches {
			wg.Go(func() { one(b) })
		}
		wg.Wait()
	}
	out := make(map[string]tier.Lease, len(seen))
	for _, b := range batches {
		for i, k := range b.keys {
			if b.ok[i] {
				out[k] = b.leases[i]
			}
		}
		if b.err != nil {
			errs = append(errs, b.err)
		}
	}
	return out, errors.Join(errs...)
}

// takeover is a lease to take by rewriting the item of key i of a batch.
type takeover struct {
	i   int
	cas uint64
	rec record
	ttl int64 // seconds; 0 is for ever
}

// leaseOn asks b's node for b's leases, and takes over those that need it.
func (t *Tier) leaseOn(ctx context.Context, b *leaseBatch, req tier.LeaseRequest) {
	ttl := strconv.FormatInt(ceilSeconds(req.TTL), 10)
	buf := make([]byte, 0, len(b.wires)*(len(b.wires[0])+24)+4)
	for i, wire := range b.wires {
		buf = append(buf, "mg "...)
		buf = append(buf, wire...)
		buf = append(buf, " N"...)
		buf = append(buf, ttl...)
		buf = append(buf, " c f t v O"...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, "\r\n"...)
	}
	buf = append(buf, "mn\r\n"...)
	replies := make([]mcwire.Reply, len(b.wires))
	err := t.roundTrip(ctx, "lease", b.node, &mcwire.Request{Buf: buf, Read: func(r *mcwire.Reader) error {
		return readBatch(r, replies)
	}})
	if err != nil {
		b.err = err
		return
	}
	var takeovers []takeover
	for i, rep := range replies {
		switch {
		case rep.Code != "VA":
			b.err = errors.Join(b.err, t.refused("lease", b.node, rep))
		case isStub(rep.Flags, rep.Value) && rep.Win:
			t.lease.won.Add(1)
			b.leases[i], b.ok[i] = tier.Lease{State: tier.LeaseWon, Token: rep.CAS}, true
		case isStub(rep.Flags, rep.Value):
			t.lease.held.Add(1)
			b.leases[i], b.ok[i] = tier.Lease{State: tier.LeaseHeld}, true
		default:
			if rec, ok := t.classify(b, i, rep.Flags, rep.Value, req); !ok {
				ttl := rep.TTL // seconds left; -1 for none
				if ttl < 0 {
					ttl = 0 // for ever
				} else {
					ttl = max(ttl, ceilSeconds(req.TTL)) // the item must outlive its lease
				}
				takeovers = append(takeovers, takeover{i: i, cas: rep.CAS, rec: rec, ttl: ttl})
			}
		}
	}
	if len(takeovers) > 0 {
		t.takeOver(ctx, b, takeovers, req)
	}
}

// classify turns the item read for key i, anything but a stub, into its
// lease, or reports (ok false) that the lease must be taken over the item:
// rec is then the item with a lease, to be written in its place.
func (t *Tier) classify(b *leaseBatch, i int, flags uint32, value []byte, req tier.LeaseRequest) (rec record, ok bool) {
	key, hashed := b.keys[i], b.hashed[i]
	// An item that is neither a record nor an envelope stays empty, and
	// is taken over.
	if flags == recordFlags(hashed) {
		if r, err := decodeRecord(key, hashed, value); err == nil {
			rec = r
		}
	} else if e, err := decodeItem(key, hashed, flags, value); err == nil {
		rec.entry = &e
	}
	fresh := rec.entry != nil && !rec.entry.Expired(req.Now)
	switch {
	case fresh && (!req.Refresh || refreshedSince(rec.entry, req.Replacing)):
		b.leases[i] = tier.Lease{State: tier.LeaseHit, Entry: rec.entry, Marker: rec.marker}
	case !rec.leaseUntil.IsZero() && req.Now.Before(rec.leaseUntil):
		t.lease.held.Add(1)
		b.leases[i] = tier.Lease{State: tier.LeaseHeld, Entry: rec.entry, Marker: rec.marker}
	default:
		rec.leaseUntil, rec.nonce = req.Now.Add(req.TTL), 0
		return rec, false
	}
	b.ok[i] = true
	return record{}, true
}

// takeOver rewrites the items of tks with a lease, each conditional on the
// CAS it was read with, in one round trip.
func (t *Tier) takeOver(ctx context.Context, b *leaseBatch, tks []takeover, req tier.LeaseRequest) {
	var buf []byte
	for j, tk := range tks {
		key, hashed := b.keys[tk.i], b.hashed[tk.i]
		buf = mcwire.AppendMetaSet(buf, b.wires[tk.i], encodeRecord(key, hashed, tk.rec),
			"C"+strconv.FormatUint(tk.cas, 10), "T"+strconv.FormatInt(tk.ttl, 10),
			"F"+strconv.FormatUint(uint64(recordFlags(hashed)), 10), "c", "O"+strconv.Itoa(j))
	}
	buf = append(buf, "mn\r\n"...)
	replies := make([]mcwire.Reply, len(tks))
	err := t.roundTrip(ctx, "lease", b.node, &mcwire.Request{Buf: buf, Read: func(r *mcwire.Reader) error {
		return readBatch(r, replies)
	}})
	if err != nil {
		b.err = errors.Join(b.err, err)
		return
	}
	for j, rep := range replies {
		tk := tks[j]
		switch rep.Code {
		case "HD":
			t.lease.won.Add(1)
			t.lease.takeovers.Add(1)
			b.leases[tk.i] = tier.Lease{State: tier.LeaseWon, Entry: tk.rec.entry, Marker: tk.rec.marker, Token: rep.CAS}
		case "EX", "NF":
			// Someone wrote the key first: a takeover, a fill or an
			// invalidation. The next poll will tell which.
			t.lease.held.Add(1)
			b.leases[tk.i] = tier.Lease{State: tier.LeaseHeld, Entry: tk.rec.entry, Marker: tk.rec.marker}
		default:
			b.err = errors.Join(b.err, t.refused("lease", b.node, rep))
			continue
		}
		b.ok[tk.i] = true
	}
}

// readBatch reads one reply per slot of replies, each tagged with its
// index as opaque, then MN.
func readBatch(r *mcwire.Reader, replies []mcwire.Reply) error {
	for i := range replies {
		rep, err := r.Next()
		if err == nil {
			err = outOfStep(rep)
		}
		if err != nil {
			return err
		}
		if rep.Code != "SERVER_ERROR" && rep.Opaque != i {
			return fmt.Errorf("%w: reply %q tagged %d where %d was due", mcwire.ErrProtocol, rep.Code, rep.Opaque, i)
		}
		replies[i] = rep
	}
	rep, err := r.Next()
	if err == nil && rep.Code != "MN" {
		err = fmt.Errorf("%w: %s where MN was due", mcwire.ErrProtocol, rep.Code)
	}
	return err
}

// refused is the error for a command the server answered but did not carry
// out. The node is alive: it does not count against its health.
func (t *Tier) refused(op string, n *node, rep mcwire.Reply) error {
	cause := fmt.Errorf("server replied %s %s", rep.Code, rep.Msg)
	if rep.TooLarge() {
		return t.tooLarge(op, cause)
	}
	return t.fail(op+" "+n.key, cause)
}

// Fill implements tier.Leaser: it stores w for key only if l, which Lease
// granted, is still the key's lease. It returns an error wrapping
// tier.ErrLeaseLost when it is not, and one wrapping tier.ErrTooLarge,
// after releasing the lease, for an entry too large for the servers.
func (t *Tier) Fill(ctx context.Context, key string, l tier.Lease, w tier.LeaseWrite) error {
	wire, hashed, r, err := t.locate(ctx, "fill", key)
	if err != nil {
		return err
	}
	it := t.fillItem(key, wire, hashed, r, w)
	if it == nil {
		return t.Release(ctx, key, l) // nothing worth storing
	}
	n := r.owner
	t.learnItemLimit(n)
	if err := t.checkSize("fill", n, it); err != nil {
		return errors.Join(err, t.Release(ctx, key, l))
	}
	if !n.isUp() {
		return t.skip(n)
	}
	p, err := t.leaseProtocol(n)
	if err != nil {
		return err
	}
	rep, err := t.casWrite(ctx, "fill", n, p, it, l.Token)
	if err != nil {
		return err
	}
	return t.filled(n, it, rep)
}

// fillItem is the item a fill of w stores, or nil when there is nothing
// worth storing (w has no entry, or what it stores has expired).
func (t *Tier) fillItem(key, wire string, hashed bool, r route, w tier.LeaseWrite) *mcwire.Item {
	now := t.clock.Now()
	exp, live := expiration(now, t.keepUntil(r, w, now))
	if !live || w.Entry == nil {
		return nil
	}
	if w.Marker.At.IsZero() {
		e := *w.Entry
		if r.substitute() {
			e = t.capTTL(e, now)
		}
		return newItem(key, wire, hashed, e, exp)
	}
	return recordItem(key, wire, hashed, record{marker: w.Marker, entry: w.Entry}, exp)
}

// filled is a fill's outcome, from the reply to its conditional write
// (in the meta protocol's codes, see casWrite).
func (t *Tier) filled(n *node, it *mcwire.Item, rep mcwire.Reply) error {
	switch {
	case rep.Code == "HD":
		t.lease.fills.Add(1)
		return nil
	case rep.Code == "EX", rep.Code == "NF", rep.Code == "NS":
		t.lease.refused.Add(1)
		return errLeaseLost
	case rep.TooLarge():
		return t.refusedTooLarge("fill", n, it, rep.Msg)
	default:
		return t.refused("fill", n, rep)
	}
}

// Release implements tier.Leaser: a lease that vivified a stub deletes the
// stub (on the classic protocol, which has no conditional delete, it
// replaces it with an empty record that lives a second); one taken over
// an item puts the item back without the lease. All only if l is still
// the key's lease.
func (t *Tier) Release(ctx context.Context, key string, l tier.Lease) error {
	wire, hashed, r, err := t.locate(ctx, "release", key)
	if err != nil {
		return err
	}
	n := r.owner
	if !n.isUp() {
		return t.skip(n)
	}
	p, err := t.leaseProtocol(n)
	if err != nil {
		return err
	}
	now := t.clock.Now()
	exp, live := expiration(now, t.keepUntil(r, tier.LeaseWrite{Entry: l.Entry, Marker: l.Marker}, now))
	empty := !live || l.Entry == nil && l.Marker.At.IsZero()
	var it *mcwire.Item // nil: delete the stub
	switch {
	case empty && p == protoClassic:
		// No conditional delete in the classic protocol: a record with
		// nothing in it, which the next caller takes over at once, and
		// which is gone a second later.
		it = recordItem(key, wire, hashed, record{}, 1)
	case !empty && l.Marker.At.IsZero():
		it = newItem(key, wire, hashed, *l.Entry, exp)
	case !empty:
		it = recordItem(key, wire, hashed, record{marker: l.Marker, entry: l.Entry}, exp)
	}
	var rep mcwire.Reply
	if it == nil {
		rep, err = t.store(ctx, "release", n, []byte("md "+wire+" C"+strconv.FormatUint(l.Token, 10)+"\r\n"))
	} else {
		rep, err = t.casWrite(ctx, "release", n, p, it, l.Token)
	}
	if err != nil {
		return err
	}
	t.lease.releases.Add(1)
	switch rep.Code {
	case "HD", "EX", "NF", "NS":
		return nil // released, or no longer ours to release
	default:
		return t.refused("release", n, rep)
	}
}

// casWrite stores it in n's memcached only if the key's CAS is still
// token, with the command of p, the protocol n's leases use: ms with C,
// or cas. The reply's code is the meta protocol's either way: cas's
// STORED, EXISTS, NOT_FOUND and NOT_STORED come back as HD, EX, NF and NS.
func (t *Tier) casWrite(ctx context.Context, op string, n *node, p leaseProto, it *mcwire.Item, token uint64) (mcwire.Reply, error) {
	rep, err := t.store(ctx, op, n, appendCASWrite(nil, p, it, token, -1))
	if meta, ok := classicToMeta[rep.Code]; ok {
		rep.Code = meta
	}
	return rep, err
}

// appendCASWrite appends the conditional write of it with p's command;
// on the meta protocol, an opaque of 0 or more makes it quiet (only a
// failure is answered) and tags its reply.
func appendCASWrite(buf []byte, p leaseProto, it *mcwire.Item, token uint64, opaque int) []byte {
	if p == protoClassic {
		return mcwire.AppendStorage(buf, "cas", it, token)
	}
	flags := []string{"C" + strconv.FormatUint(token, 10), "T" + strconv.FormatInt(int64(it.Expiration), 10),
		"F" + strconv.FormatUint(uint64(it.Flags), 10)}
	if opaque >= 0 {
		flags = append(flags, "q", "O"+strconv.Itoa(opaque))
	}
	return mcwire.AppendMetaSet(buf, it.Key, it.Value, flags...)
}

// classicToMeta names the classic storage replies by their meta twins.
var classicToMeta = map[string]string{"STORED": "HD", "EXISTS": "EX", "NOT_FOUND": "NF", "NOT_STORED": "NS"}

// Invalidate implements tier.Leaser: it replaces whatever the key holds
// with a record of w's marker and entry, unconditionally, which changes
// the key's CAS and so voids every lease of it. The record is kept until
// the marker's Until (or the entry's expiry plus w.Grace, if later); on a
// substitute node (auto-eject), no longer than the ejected TTL cap. An
// entry too large for the servers is left out, the marker stored alone,
// and the error wraps tier.ErrTooLarge. A key whose node is down returns
// ErrNodeDown at once, and the node deletes the key, marker and all,
// before it takes traffic again.
func (t *Tier) Invalidate(ctx context.Context, key string, w tier.LeaseWrite) error {
	wire, hashed, r, err := t.locate(ctx, "invalidate", key)
	if err != nil {
		return err
	}
	now := t.clock.Now()
	if w.Entry != nil && r.substitute() {
		e := t.capTTL(*w.Entry, now)
		w.Entry = &e
	}
	exp, live := expiration(now, t.keepUntil(r, w, now))
	if !live {
		t.stats.expiredSkipped.Add(1)
		return t.remove(ctx, "invalidate", r, wire)
	}
	n := r.owner
	t.learnItemLimit(n)
	it := recordItem(key, wire, hashed, record{marker: w.Marker, entry: w.Entry}, exp)
	var tooLarge error
	if tooLarge = t.checkSize("invalidate", n, it); tooLarge != nil {
		w.Entry = nil
		exp, _ = expiration(now, t.keepUntil(r, w, now))
		it = recordItem(key, wire, hashed, record{marker: w.Marker}, exp)
	}
	if r.substitute() {
		t.invalidateHome(ctx, r.home, wire)
	}
	if n.skipWrite(wire) {
		return t.skip(n)
	}
	rep, err := t.store(ctx, "invalidate", n, mcwire.AppendStorage(nil, "set", it, 0))
	if err == nil && rep.TooLarge() && w.Entry != nil {
		// The server takes less than it was thought to: the marker alone.
		tooLarge = t.refusedTooLarge("invalidate", n, it, rep.Msg)
		w.Entry = nil
		exp, _ = expiration(now, t.keepUntil(r, w, now))
		it = recordItem(key, wire, hashed, record{marker: w.Marker}, exp)
		rep, err = t.store(ctx, "invalidate", n, mcwire.AppendStorage(nil, "set", it, 0))
	}
	if err == nil && rep.Code != "STORED" {
		err = t.refused("invalidate", n, rep)
	}
	if err != nil {
		n.remember(wire)
		return err
	}
	n.forget(wire)
	t.lease.markers.Add(1)
	return tooLarge
}

// keepUntil is how long memcached must keep what w stores: until the
// entry's expiry plus the grace, and at least until the marker's Until.
// The zero time is for ever. On a substitute node it is capped at the
// ejected TTL cap.
func (t *Tier) keepUntil(r route, w tier.LeaseWrite, now time.Time) time.Time {
	var until time.Time
	forever := false
	if e := w.Entry; e != nil {
		if e.Expires.IsZero() {
			forever = true
		} else {
			until = e.Expires.Add(w.Grace)
		}
	}
	if m := w.Marker; !m.At.IsZero() {
		if m.Until.IsZero() {
			forever = true
		} else if m.Until.After(until) {
			until = m.Until
		}
	}
	if forever {
		until = time.Time{}
	}
	if r.substitute() {
		if limit := now.Add(t.cfg.ejectedTTLCap); until.IsZero() || until.After(limit) {
			until = limit
		}
	}
	return until
}

// refreshedSince reports whether e was loaded after replacing, the load
// time of the value a refresh means to replace: someone else's refresh
// landed first.
func refreshedSince(e *tier.Entry, replacing time.Time) bool {
	return !replacing.IsZero() && e.Loaded.After(replacing)
}

// ceilSeconds is d in whole seconds, rounded up, at least 1.
func ceilSeconds(d time.Duration) int64 {
	return max(int64((d+time.Second-1)/time.Second), 1)
}
