package tier

import (
	"context"
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

// call is one key being loaded. done is closed once res is set.
type call struct {
	done chan struct{}
	res  result
}

// flight is one trip through the chain for one or more keys. It runs on a
// context of its own, without the callers' cancellation, so that no single
// caller's leaving fails the others, and so that a load every caller left
// keeps running (bounded by the load timeout) for the next caller to join.
type flight struct {
	calls map[string]*call // fixed at claim; read without the lock
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
// the flight the caller must start with run.
func (g *flightGroup) claim(parent context.Context, keys []string) (own []string, joined map[string]*call, mine *flight, loadCtx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range keys {
		c, ok := g.calls[k]
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
	c = &call{done: make(chan struct{})}
	g.calls[key] = c
	return c, &flight{calls: map[string]*call{key: c}}, context.WithoutCancel(parent)
}

// resolve publishes the result for key and releases its waiters.
func (f *flight) resolve(key string, res result) {
	c := f.calls[key]
	c.res = res
	close(c.done)
}

// finish removes f's keys from the group: later callers start a new load.
func (g *flightGroup) finish(f *flight) {
	g.mu.Lock()
	for k, c := range f.calls {
		if g.calls[k] == c {
			delete(g.calls, k)
		}
	}
	g.mu.Unlock()
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

// run executes load for f's keys in the background. resolve may be called
// from several goroutines, at most once per key takes effect. A panic inside
// load becomes an error for every key not resolved yet, and is reported to
// onPanic.
func (g *flightGroup) run(ctx context.Context, f *flight, load func(ctx context.Context, resolve func(key string, res result)), onPanic func()) {
	g.mu.Lock()
	closing := g.closing
	if !closing {
		g.wg.Add(1)
	}
	g.mu.Unlock()
	if closing {
		for k := range f.calls {
			f.resolve(k, result{err: ErrClosed})
		}
		g.finish(f)
		return
	}
	go func() {
		defer g.wg.Done()
		var mu sync.Mutex
		var resolved map[string]bool
		resolve := func(key string, res result) {
			mu.Lock()
			first := !resolved[key]
			if first {
				if resolved == nil {
					resolved = make(map[string]bool, len(f.calls))
				}
				resolved[key] = true
			}
			mu.Unlock()
			if first {
				f.resolve(key, res)
			}
		}
		defer g.finish(f)
		defer func() {
			if r := recover(); r != nil {
				onPanic()
				err := fmt.Errorf("%w: %v\n%s", ErrLoaderPanic, r, debug.Stack())
				for k := range f.calls {
					resolve(k, result{err: err})
				}
			}
		}()
		load(ctx, resolve)
		for k := range f.calls {
			// A load that skipped a key must not leave its waiters hanging.
			resolve(k, result{err: fmt.Errorf("tier: load of %q returned no result", k)})
		}
	}()
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
