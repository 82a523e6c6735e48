package tier

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// generationStripes is the number of generation counters. Keys share a
// counter by hash; a Delete of one key then also voids in-flight backfills
// of the few keys sharing its stripe, which costs a skipped backfill, never
// a stale value. A fixed array keeps memory bounded however many keys pass.
const generationStripes = 4096

// generations lets an invalidation win over a load that was in flight when
// it happened, or that began while it was under way. Set and Delete bump a
// key's generation before they touch any tier, and again once they have
// reached every tier, and count themselves active in between. A backfill
// checks that the generation it saw before loading is still current and
// that no invalidation is active, both before writing and after, and
// undoes its write if either check fails after it. Because the first bump
// comes first, a load that began before the invalidation sees its
// generation move; a load that began during it (and may have read a tier
// the invalidation had not reached yet) sees it active, or, once it ended,
// the second bump. Every interleaving ends with the invalidation's effect
// in every tier.
//
// The zero value is ready to use and safe for concurrent use.
type generations struct {
	seed    maphash.Seed
	stripes [generationStripes]atomic.Uint64
	active  [generationStripes]atomic.Int32

	// watching counts the watches open, so that invalidations look at
	// watchMu only while a warmup runs.
	watching atomic.Int32
	watchMu  sync.Mutex
	watches  map[*invalidationWatch]struct{}
}

func newGenerations() *generations {
	return &generations{seed: maphash.MakeSeed()}
}

func (g *generations) index(key string) uint64 {
	return maphash.String(g.seed, key) % generationStripes
}

func (g *generations) stripe(key string) *atomic.Uint64 { return &g.stripes[g.index(key)] }

// maxWatched bounds the keys one watch remembers: past it, the watch
// falls back to the stripes, which costs skipped stripe-mates, never a
// missed invalidation.
const maxWatched = 1 << 20

// invalidationWatch records the keys invalidated while a long job (a
// warmup) runs, so that it skips exactly those keys and not the others
// sharing their stripes. It is safe for concurrent use.
type invalidationWatch struct {
	g        *generations
	mu       sync.Mutex
	keys     map[string]struct{}
	overflow bool
	// stripes are the generations when the watch began, for the keys
	// that overflow.
	stripes [generationStripes]uint64
}

// watch starts recording invalidations. Every invalidation that begins or
// ends after watch returns is recorded; stop ends it.
func (g *generations) watch() *invalidationWatch {
	w := &invalidationWatch{g: g, keys: make(map[string]struct{})}
	g.watchMu.Lock()
	if g.watches == nil {
		g.watches = make(map[*invalidationWatch]struct{})
	}
	g.watches[w] = struct{}{}
	g.watching.Add(1)
	g.watchMu.Unlock()
	for i := range g.stripes {
		w.stripes[i] = g.stripes[i].Load()
	}
	return w
}

// stop ends the watch.
func (w *invalidationWatch) stop() {
	w.g.watchMu.Lock()
	defer w.g.watchMu.Unlock()
	if _, ok := w.g.watches[w]; ok {
		delete(w.g.watches, w)
		w.g.watching.Add(-1)
	}
}

// invalidated reports whether key was invalidated since the watch began.
// An invalidation in progress when it began counts once it ends.
func (w *invalidationWatch) invalidated(key string) bool {
	w.mu.Lock()
	_, ok := w.keys[key]
	overflow := w.overflow
	w.mu.Unlock()
	if ok || !overflow {
		return ok
	}
	i := w.g.index(key)
	return w.g.stripes[i].Load() != w.stripes[i]
}

func (w *invalidationWatch) add(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.keys) >= maxWatched {
		w.overflow = true
		return
	}
	w.keys[key] = struct{}{}
}

// record tells every open watch that key is being invalidated, before the
// stripe moves.
func (g *generations) record(key string) {
	if g.watching.Load() == 0 {
		return
	}
	g.watchMu.Lock()
	defer g.watchMu.Unlock()
	for w := range g.watches {
		w.add(key)
	}
}

// current returns key's generation.
func (g *generations) current(key string) uint64 { return g.stripe(key).Load() }

// bump invalidates every load of key that started before it.
func (g *generations) bump(key string) { g.stripe(key).Add(1) }

// begin starts an invalidation of key: it voids the loads in flight and
// holds every backfill of key off until end.
func (g *generations) begin(key string) {
	g.record(key)
	i := g.index(key)
	g.active[i].Add(1)
	g.stripes[i].Add(1)
}

// end finishes an invalidation begun with begin: it voids the loads that
// began meanwhile.
func (g *generations) end(key string) {
	g.record(key)
	i := g.index(key)
	g.stripes[i].Add(1)
	g.active[i].Add(-1)
}

// settled reports whether a load of key that saw generation gen may write
// its result: no invalidation of key began since, and none is under way.
func (g *generations) settled(key string, gen uint64) bool {
	i := g.index(key)
	return g.active[i].Load() == 0 && g.stripes[i].Load() == gen
}
