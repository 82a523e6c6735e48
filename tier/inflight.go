package tier

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// result is the outcome of loading one key.
type result struct {
	value []byte
	err   error
	// readAt, when set, is when the read that produced the value began
	// (the top-tier lookup, the lease request, or the load from the
	// source), on this process's monotonic clock. A caller that joined the
	// flight after that cannot tell whether an invalidation by another
	// process came in between, and loads the key again (see late).
	readAt time.Time
	// confirm, when set, tells when the fill through the flight's lease
	// began, once it has landed: a caller that came after the read but
	// before the fill may take the value after all.
	confirm *confirmation
}

// confirmation is the outcome of a fill through a lease, for the callers
// that joined a flight after its read. at is when the fill began, zero if
// it did not land; it is set before done is closed.
type confirmation struct {
	done chan struct{}
	at   time.Time
	once sync.Once
}

func newConfirmation() *confirmation { return &confirmation{done: make(chan struct{})} }

// set records the fill's outcome; only the first call counts.
func (c *confirmation) set(at time.Time) {
	c.once.Do(func() {
		c.at = at
		close(c.done)
	})
}

// confirmed returns r as read when its lease fill began, once that fill
// has landed, if r came with a confirmation and ctx allows the wait.
func (r result) confirmed(ctx context.Context) result {
	if r.confirm == nil {
		return r
	}
	select {
	case <-r.confirm.done:
		if !r.confirm.at.IsZero() {
			r.readAt = r.confirm.at
		}
	case <-ctx.Done():
	}
	return r
}

// late reports whether r was read before a caller that claimed its key at
// claimed arrived.
func (r result) late(claimed time.Time) bool {
	return !r.readAt.IsZero() && r.readAt.Before(claimed)
}

// at returns r as read at t.
func (r result) at(t time.Time) result {
	r.readAt = t
	return r
}

// call is one key being loaded. done is closed once res is set; only the
// first resolve counts.
type call struct {
	done chan struct{}
	res  result
	once sync.Once
}

// flight is one trip through the chain for one or more keys. It runs on a
// context of its own, without the callers' cancellation, so that no single
// caller's leaving fails the others, and so that a load every caller left
// keeps running (bounded by the load timeout) for the next caller to join.
type flight struct {
	// The calls, fixed at claim and read without the lock: calls for a
	// flight of several keys; key and one for a flight of one, which every
	// Get starts, without a map.
	calls map[string]*call
	key   string
	one   *call
}

// call returns the call of key, one of f's keys.
func (f *flight) call(key string) *call {
	if f.calls == nil {
		return f.one
	}
	return f.calls[key]
}

// each calls fn for each of f's keys and its call.
func (f *flight) each(fn func(key string, c *call)) {
	if f.calls == nil {
		fn(f.key, f.one)
		return
	}
	for k, c := range f.calls {
		fn(k, c)
	}
}

// flightGroup is a singleflight keyed by cache key that also works in bulk:
// a caller claims many keys at once, loads the ones nobody else is loading,
// and joins the rest. Unlike x/sync/singleflight, callers wait with their own
// context and the load survives the caller that started it. A key stays
// joinable, its result already published, until its flight has written
// what it found into the tiers: a caller arriving meanwhile takes that
// result instead of missing the tiers and loading the key again.
//
// The zero value is not usable; use newFlightGroup.
type flightGroup struct {
	mu      sync.Mutex
	calls   map[string]*call
	closing bool           // no new loads start once set
	wg      sync.WaitGroup // running flights; close waits for them
}

func newFlightGroup() *flightGroup {
	return &flightGroup{calls: make(map[string]*call)}
}

// claim registers the caller's interest in keys. Keys already in a flight
// are returned in joined; the others are returned in own, together with
// the flight the caller must start, registered as running. Once close has
// begun no flight starts: the caller's own keys come back in joined,
// answered with ErrClosed.
func (g *flightGroup) claim(parent context.Context, keys []string) (own []string, joined map[string]*call, mine *flight, loadCtx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range keys {
		c, ok := g.calls[k]
		if !ok && g.closing {
			c, ok = closedCall(), true
		}
		if !ok {
			own = append(own, k)
			continue
		}
		if joined == nil {
			joined = make(map[string]*call)
		}
		joined[k] = c
	}
	if len(own) == 0 {
		return own, joined, nil, nil
	}
	mine = &flight{calls: make(map[string]*call, len(own))}
	for _, k := range own {
		c := &call{done: make(chan struct{})}
		mine.calls[k] = c
		g.calls[k] = c
	}
	g.wg.Add(1)
	// The load keeps the caller's values (trace IDs, auth) but not its
	// cancellation: it belongs to every caller that joins it.
	return own, joined, mine, context.WithoutCancel(parent)
}

// claimOne is claim for a single key, without the maps: the path every
// Get takes.
func (g *flightGroup) claimOne(parent context.Context, key string) (c *call, mine *flight, loadCtx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.calls[key]; ok {
		return c, nil, nil
	}
	if g.closing {
		return closedCall(), nil, nil
	}
	c = &call{done: make(chan struct{})}
	g.calls[key] = c
	g.wg.Add(1)
	return c, &flight{key: key, one: c}, context.WithoutCancel(parent)
}

// closedCall is the answer for a key claimed once close has begun.
func closedCall() *call {
	c := &call{done: make(chan struct{}), res: result{err: ErrClosed}}
	close(c.done)
	return c
}

// resolve publishes the result for key and releases its waiters. It may
// be called from several goroutines; only the first call for a key counts.
func (f *flight) resolve(key string, res result) {
	c := f.call(key)
	c.once.Do(func() {
		c.res = res
		close(c.done)
	})
}

// finish removes f's keys from the group: later callers start a new load.
func (g *flightGroup) finish(f *flight) {
	g.mu.Lock()
	f.each(func(k string, c *call) {
		if g.calls[k] == c {
			delete(g.calls, k)
		}
	})
	g.mu.Unlock()
}

// finishKey removes key, one of f's keys, from the group: later callers of
// it start a new load.
func (g *flightGroup) finishKey(f *flight, key string) {
	g.forgetCall(key, f.call(key))
}

// forgetCall is forget, but only while c is key's current call: a caller
// that will not take c's result makes the next caller start a new load,
// without touching one that someone started meanwhile.
func (g *flightGroup) forgetCall(key string, c *call) {
	g.mu.Lock()
	if g.calls[key] == c {
		delete(g.calls, key)
	}
	g.mu.Unlock()
}

// forget makes later callers of key start a new load instead of joining the
// current one; the waiters already there still get its result. Delete and
// Set call it so that no caller arriving after them receives a value loaded
// before them.
func (g *flightGroup) forget(key string) {
	g.mu.Lock()
	delete(g.calls, key)
	g.mu.Unlock()
}

// exit ends a flight claim registered: a key it left unresolved gets an
// error, a panic raised in it (recovered by the caller) an error wrapping
// ErrLoaderPanic, and its keys leave the group.
func (g *flightGroup) exit(f *flight, panicked any) {
	defer g.wg.Done()
	defer g.finish(f)
	var err error
	f.each(func(k string, c *call) {
		if isClosed(c.done) {
			return
		}
		if err == nil {
			err = errors.New("tier: load returned no result")
			if panicked != nil {
				err = fmt.Errorf("%w: %v\n%s", ErrLoaderPanic, panicked, debug.Stack())
			}
		}
		f.resolve(k, result{err: err})
	})
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// close stops new loads from starting and waits for the running ones.
func (g *flightGroup) close() {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
	g.wg.Wait()
}

// wait blocks until c is resolved or ctx is done.
func wait(ctx context.Context, c *call) result {
	select {
	case <-c.done:
		return c.res
	case <-ctx.Done():
		return result{err: ctx.Err()}
	}
}
