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
// it happened. Set and Delete bump a key's generation before they touch any
// tier; a backfill checks the generation it saw before loading, both before
// writing and after, and undoes its write if the key was invalidated in
// between. Because the bump comes first, every interleaving ends with the
// invalidation's effect in every tier.
//
// The zero value is ready to use and safe for concurrent use.
type generations struct {
	seed    maphash.Seed
	stripes [generationStripes]atomic.Uint64
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
