package tier

import (
	"hash/maphash"
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
}

func newGenerations() *generations {
	return &generations{seed: maphash.MakeSeed()}
}

func (g *generations) index(key string) uint64 {
	return maphash.String(g.seed, key) % generationStripes
}

func (g *generations) stripe(key string) *atomic.Uint64 { return &g.stripes[g.index(key)] }

// snapshot records every stripe's generation, so that a long job (warmup)
// can tell which keys were invalidated after it began.
func (g *generations) snapshot() *[generationStripes]uint64 {
	var s [generationStripes]uint64
	for i := range g.stripes {
		s[i] = g.stripes[i].Load()
	}
	return &s
}

// current returns key's generation.
func (g *generations) current(key string) uint64 { return g.stripe(key).Load() }

// bump invalidates every load of key that started before it.
func (g *generations) bump(key string) { g.stripe(key).Add(1) }

// begin starts an invalidation of key: it voids the loads in flight and
// holds every backfill of key off until end.
func (g *generations) begin(key string) {
	i := g.index(key)
	g.active[i].Add(1)
	g.stripes[i].Add(1)
}

// end finishes an invalidation begun with begin: it voids the loads that
// began meanwhile.
func (g *generations) end(key string) {
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
