package memcached

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/tier"
)

// Tier is the memcached level of a tiercache chain. It is safe for
// concurrent use.
//
// Every key is accepted (see the key encoding in key.go); every failure to
// reach a node comes back as an error wrapping ErrUnavailable, which the
// chain counts and treats as a miss.
type Tier struct {
	client      *memcache.Client
	conns       *connSet
	keys        keyCodec
	maxItemSize int
	clock       tier.Clock
	servers     []Server
	closed      atomic.Bool
	stats       counters
}

var (
	_ tier.Tier        = (*Tier)(nil)
	_ tier.Adder       = (*Tier)(nil)
	_ tier.MultiGetter = (*Tier)(nil)
	_ tier.Counter     = (*Tier)(nil)
)

// New returns a Tier over servers, each in nutcracker.yml's form
// "host:port[:weight] [name]" (see ParseServer). At least one server is
// required unless WithSelector supplies the placement. New resolves the
// addresses but does not connect: a node that is down shows up as
// ErrUnavailable from the operations, not as an error here.
func New(servers []string, opts ...Option) (*Tier, error) {
	cfg := defaultConfig()
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	parsed, err := parseServers(servers)
	if err != nil {
		return nil, err
	}
	selector := cfg.selector
	switch {
	case selector != nil && len(parsed) > 0:
		return nil, fmt.Errorf("%w: WithSelector replaces the server list; pass no servers", ErrInvalidOption)
	case selector != nil && (cfg.hash != "" || cfg.distribution != ""):
		return nil, fmt.Errorf("%w: WithSelector cannot be combined with WithHash or WithDistribution", ErrInvalidOption)
	case selector == nil && len(parsed) == 0:
		return nil, fmt.Errorf("%w: no servers", ErrBadServer)
	case selector == nil:
		if selector, err = newSelector(parsed, cfg.hash, cfg.distribution); err != nil {
			return nil, err
		}
	}

	conns := newConnSet()
	client := memcache.NewFromSelector(selector)
	client.Timeout = cfg.timeout
	client.MaxIdleConns = cfg.maxIdleConns
	client.DialContext = conns.DialContext
	return &Tier{
		client:      client,
		conns:       conns,
		keys:        keyCodec{prefix: cfg.keyPrefix},
		maxItemSize: cfg.maxItemSize,
		clock:       cfg.clock,
		servers:     parsed,
	}, nil
}

// Name returns "memcached", the tier's name in the chain's stats.
func (t *Tier) Name() string { return "memcached" }

// Servers returns the parsed server list, in the order given to New.
func (t *Tier) Servers() []Server { return slices.Clone(t.servers) }

// Counters implements tier.Counter. The keys are:
//
//	hits             keys found, by Get and GetMulti
//	misses           keys not found, decode_errors included (a GetMulti
//	                 that failed on a node counts that node's keys here)
//	errors           operations that failed to talk to memcached
//	timeouts         the errors that were timeouts
//	too_large        Set and Add refused for size, here or by the server
//	decode_errors    items found but not written by this package
//	encoded_keys     keys sent hashed because memcached cannot carry them
//	not_stored       Add calls that found the key present
//	expired_skipped  Set and Add of an entry that had already expired
//	retries          operations tried again after a stale pooled connection
func (t *Tier) Counters() map[string]int64 { return t.stats.snapshot() }

// Close closes every connection, idle or in use (an operation in flight
// fails with ErrUnavailable), after which every method returns
// tier.ErrClosed. Closing twice is not an error.
func (t *Tier) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.conns.Close()
	return nil
}

// Get implements tier.Tier. A key memcached does not hold, or holds under a
// value this package did not write, returns an error wrapping tier.ErrMiss.
//
// gomemcache takes no context: ctx is checked before any I/O, and from then
// on the call is bounded by the timeout (see WithTimeout).
func (t *Tier) Get(ctx context.Context, key string) (tier.Entry, error) {
	if err := t.ready(ctx, "get"); err != nil {
		return tier.Entry{}, err
	}
	wire, hashed := t.encodeKey(key)
	it, err := retried(t, func() (*memcache.Item, error) { return t.client.Get(wire) })
	if errors.Is(err, memcache.ErrCacheMiss) {
		t.stats.misses.Add(1)
		return tier.Entry{}, errMiss
	}
	if err != nil {
		return tier.Entry{}, t.fail("get", err)
	}
	if it.Key != wire {
		// gomemcache hands back whatever item the server sent.
		return tier.Entry{}, t.fail("get", fmt.Errorf("server answered with key %q", it.Key))
	}
	e, err := decodeItem(key, hashed, it)
	if err != nil {
		t.stats.decodeErrors.Add(1)
		t.stats.misses.Add(1)
		return tier.Entry{}, fmt.Errorf("memcached: get: %w: %w", tier.ErrMiss, err)
	}
	t.stats.hits.Add(1)
	return e, nil
}

// GetMulti implements tier.MultiGetter with one multi-get per node, run in
// parallel by gomemcache. Every key is encoded to a legal memcached key, so
// no single key can fail the batch (gomemcache refuses a whole batch over
// one malformed key). When a node fails, the entries found on the others
// are returned together with an error wrapping ErrUnavailable.
func (t *Tier) GetMulti(ctx context.Context, keys []string) (map[string]tier.Entry, error) {
	if err := t.ready(ctx, "get multi"); err != nil {
		return nil, err
	}
	type request struct {
		key    string
		hashed bool
	}
	byWire := make(map[string]request, len(keys))
	wires := make([]string, 0, len(keys))
	for _, key := range keys {
		wire, hashed := t.encodeKey(key)
		if _, dup := byWire[wire]; dup {
			continue
		}
		byWire[wire] = request{key, hashed}
		wires = append(wires, wire)
	}
	found := make(map[string]tier.Entry, len(wires))
	if len(wires) == 0 {
		return found, nil
	}
	items, err := retried(t, func() (map[string]*memcache.Item, error) { return t.client.GetMulti(wires) })
	for wire, it := range items {
		req, asked := byWire[wire]
		if !asked {
			continue // a confused server sent a key nobody asked for
		}
		e, derr := decodeItem(req.key, req.hashed, it)
		if derr != nil {
			t.stats.decodeErrors.Add(1)
			continue
		}
		found[req.key] = e
	}
	t.stats.hits.Add(int64(len(found)))
	t.stats.misses.Add(int64(len(wires) - len(found)))
	if err != nil {
		return found, t.fail("get multi", err)
	}
	return found, nil
}

// Set implements tier.Tier. An entry that has already expired is not
// stored, and the key is deleted so that no older value stays behind; so
// is an entry too large for the servers, and Set then returns an error
// wrapping tier.ErrTooLarge.
func (t *Tier) Set(ctx context.Context, key string, e tier.Entry) error {
	if err := t.ready(ctx, "set"); err != nil {
		return err
	}
	wire, hashed := t.encodeKey(key)
	exp, live := expiration(t.clock.Now(), e.Expires)
	if !live {
		t.stats.expiredSkipped.Add(1)
		return t.remove("set", wire)
	}
	it := newItem(key, wire, hashed, e, exp)
	if err := t.checkSize("set", it); err != nil {
		return errors.Join(err, t.remove("set", wire))
	}
	_, err := retried(t, func() (struct{}, error) { return struct{}{}, t.client.Set(it) })
	if serverTooLarge(err) {
		return errors.Join(t.tooLarge("set", err), t.remove("set", wire))
	}
	if err != nil {
		return t.fail("set", err)
	}
	return nil
}

// Add implements tier.Adder with memcached's add. It returns an error
// wrapping tier.ErrNotStored when the key is present, and one wrapping
// tier.ErrTooLarge, without sending anything, for an entry too large for
// the servers. An entry that has already expired is not sent, and Add
// returns nil: there is nothing worth storing.
func (t *Tier) Add(ctx context.Context, key string, e tier.Entry) error {
	if err := t.ready(ctx, "add"); err != nil {
		return err
	}
	wire, hashed := t.encodeKey(key)
	exp, live := expiration(t.clock.Now(), e.Expires)
	if !live {
		t.stats.expiredSkipped.Add(1)
		return nil
	}
	it := newItem(key, wire, hashed, e, exp)
	if err := t.checkSize("add", it); err != nil {
		return err
	}
	_, err := retried(t, func() (struct{}, error) { return struct{}{}, t.client.Add(it) })
	switch {
	case err == nil:
		return nil
	case errors.Is(err, memcache.ErrNotStored):
		t.stats.notStored.Add(1)
		return errNotStored
	case serverTooLarge(err):
		return t.tooLarge("add", err)
	default:
		return t.fail("add", err)
	}
}

// Delete implements tier.Tier.
func (t *Tier) Delete(ctx context.Context, key string) error {
	if err := t.ready(ctx, "delete"); err != nil {
		return err
	}
	wire, _ := t.encodeKey(key)
	return t.remove("delete", wire)
}

// ready returns why an operation must not start: the Tier is closed or the
// caller has given up.
func (t *Tier) ready(ctx context.Context, op string) error {
	if t.closed.Load() {
		return fmt.Errorf("memcached: %s: %w", op, tier.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memcached: %s: %w", op, err)
	}
	return nil
}

func (t *Tier) encodeKey(key string) (wire string, hashed bool) {
	wire, hashed = t.keys.encode(key)
	if hashed {
		t.stats.encodedKeys.Add(1)
	}
	return wire, hashed
}

// remove deletes a wire key; a key that is not there is not an error.
func (t *Tier) remove(op string, wire string) error {
	_, err := retried(t, func() (struct{}, error) { return struct{}{}, t.client.Delete(wire) })
	if err == nil || errors.Is(err, memcache.ErrCacheMiss) {
		return nil
	}
	return t.fail(op, err)
}

// checkSize refuses an item memcached would refuse for its size (see
// itemOverhead), so that it is never sent.
func (t *Tier) checkSize(op string, it *memcache.Item) error {
	size := len(it.Key) + len(it.Value) + itemOverhead
	if size <= t.maxItemSize {
		return nil
	}
	return t.tooLarge(op, fmt.Errorf("%d-byte value and %d-byte key need %d bytes, the item size limit is %d",
		len(it.Value), len(it.Key), size, t.maxItemSize))
}

func (t *Tier) tooLarge(op string, cause error) error {
	t.stats.tooLarge.Add(1)
	return fmt.Errorf("memcached: %s: %w: %w", op, tier.ErrTooLarge, cause)
}

// fail counts a failure to talk to memcached and wraps it in
// ErrUnavailable.
func (t *Tier) fail(op string, err error) error {
	t.stats.errors.Add(1)
	if isTimeout(err) {
		t.stats.timeouts.Add(1)
	}
	return fmt.Errorf("memcached: %s: %w: %w", op, ErrUnavailable, err)
}
