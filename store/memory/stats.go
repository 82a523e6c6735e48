package memory

// Counters reports the tier's own counts, for the chain's Stats:
//
//	hits, misses   lookups that found a live entry, and those that did not
//	evictions      entries removed to stay within the byte or entry bound
//	expirations    entries removed because their time was up
//	too_large      values refused for their size
//	bytes          what the entries count against WithMaxBytes now
//	entries        about how many entries the tier holds now
func (t *Tier) Counters() map[string]int64 {
	s := t.hitsMisses.Snapshot()
	return map[string]int64{
		"hits":        int64(s.Hits),
		"misses":      int64(s.Misses),
		"evictions":   t.evictions.Load(),
		"expirations": t.expirations.Load(),
		"too_large":   t.tooLarge.Load(),
		"bytes":       t.bytes.Load(),
		"entries":     t.Len(),
	}
}
