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
	// (the lease request, or the load from the source), on this process's
	// monotonic clock. A caller that joined the flight after that cannot
	// tell whether an invalidation by another process came in between,
	// and loads the key again (see late).
	readAt time.Time
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
	load *flight
}

// flight is one background load of one or more keys. It runs on a context
// of its own so that no single caller's cancellation fails the others; it is
// cancelled only when every caller that wanted one of its keys has gone.
type flight struct {
	cancel  context.CancelFunc
	calls   map[string]*call // fixed at claim; read without the lock
	waiters int              // callers still interested; guarded by flightGroup.mu
}

// flightGroup is a singleflight keyed by cache key that also works in bulk:
// a caller claims many keys at once, loads the ones nobody else is loading,
// and joins the rest. Unlike x/sync/singleflight, callers wait with their own
// context and the load survives the caller that started it.
//
// The zero value is not usable; use newFlightGroup.
type flightGroup struct {
	mu      sync.Mutex
	calls   map[string]*call
	closing bool           // no new loads start once set
	wg      sync.WaitGroup // running loads; close waits for them
}

func newFlightGroup() *flightGroup {
	return &flightGroup{calls: make(map[string]*call)}
}

// claim registers the caller's interest in keys. Keys already being loaded
// are returned in joined; the others are returned in own, together with the
// flight the caller must start with start. The caller must call release once
// for every flight in flights when it stops waiting.
func (g *flightGroup) claim(parent context.Context, keys []string) (own []string, joined map[string]*call, mine *flight, loadCtx context.Context, flights []*flight) {
	g.mu.Lock()
	defer g.mu.Unlock()
	seen := make(map[*flight]bool)
	for _, k := range keys {
		c, ok := g.calls[k]
		if !ok || isClosed(c.done) {
			// A resolved call answered callers that were waiting; one
			// arriving now starts afresh, since its answer may be older
			// than what the tiers hold by now.
			own = append(own, k)
			continue
		}
		if joined == nil {
			joined = make(map[string]*call)
		}
		joined[k] = c
		if !seen[c.load] {
			seen[c.load] = true
			c.load.waiters++
			flights = append(flights, c.load)
		}
	}
	if len(own) == 0 {
		return own, joined, nil, nil, flights
	}
	// The load keeps the caller's values (trace IDs, auth) but not its
	// cancellation: it belongs to every caller that joins it.
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	mine = &flight{cancel: cancel, waiters: 1, calls: make(map[string]*call, len(own))}
	flights = append(flights, mine)
	for _, k := range own {
		c := &call{done: make(chan struct{}), load: mine}
		mine.calls[k] = c
		g.calls[k] = c
	}
	return own, joined, mine, ctx, flights
}

// release drops one caller's interest in f; the last one out cancels a load
// that is still running, since nobody would read its result.
func (g *flightGroup) release(f *flight) {
	g.mu.Lock()
	f.waiters--
	last := f.waiters == 0
	g.mu.Unlock()
	if last {
		f.cancel()
	}
}

// resolve publishes the result for key and releases its waiters. The
// flight has already written its backfill, so a caller arriving later finds
// the value in the tiers; claim does not let it join a resolved call.
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

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
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
		f.cancel()
		return
	}
	go func() {
		defer g.wg.Done()
		defer f.cancel()
		var mu sync.Mutex
		resolved := make(map[string]bool, len(f.calls))
		resolve := func(key string, res result) {
			mu.Lock()
			first := !resolved[key]
			resolved[key] = true
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
