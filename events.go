package tiercache

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// watcher turns changes in a cache's stats into one log line per event an
// operator cares about: a node going down or coming back, a restart or
// flush a tier noticed, a warmup finishing, the source starting to fail.
//
// It polls Stats rather than hooking into the tiers, so the core packages
// need no logger; the price is that a node that goes down and comes back
// between two looks is seen only through its counters.
type watcher struct {
	cache *tier.Cache
	log   *slog.Logger
	last  tier.Stats
	first bool
}

func newWatcher(c *tier.Cache, log *slog.Logger) *watcher {
	return &watcher{cache: c, log: log, first: true}
}

func (w *watcher) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	w.look()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.look()
		}
	}
}

// look compares the stats with the previous look and logs what changed.
func (w *watcher) look() {
	s := w.cache.Stats()
	if w.first {
		w.first = false
		for _, t := range s.Tiers {
			for _, n := range t.Nodes {
				if n.State != "up" && n.State != "" {
					w.log.Warn("node is not up", "tier", t.Name, "node", n.Name, "addr", n.Addr, "state", n.State)
				}
			}
		}
		w.last = s
		return
	}
	for i, t := range s.Tiers {
		var prev tier.TierStats
		if i < len(w.last.Tiers) {
			prev = w.last.Tiers[i]
		}
		w.nodes(t, prev)
		for name, v := range t.Counters {
			if d := v - prev.Counters[name]; d > 0 && isRestartCounter(name) {
				w.log.Info("server restart or flush detected", "tier", t.Name, "counter", name, "count", d)
			}
		}
	}
	if d := s.Loader.Errors - w.last.Loader.Errors; d > 0 {
		w.log.Warn("source of truth failing", "failed_loads", d, "since", "last look")
	}
	if d := s.StaleServed - w.last.StaleServed; d > 0 {
		w.log.Warn("served stale copies because the source failed", "count", d)
	}
	wu, prev := s.Warmup, w.last.Warmup
	if wu.Runs > prev.Runs || (prev.Running && !wu.Running) {
		last := wu.Last
		switch {
		case !wu.Running:
			attrs := []any{"trigger", last.Trigger,
				"scanned", wu.Scanned - prev.Scanned, "written", wu.Written - prev.Written,
				"skipped", wu.Skipped - prev.Skipped, "present", wu.Present - prev.Present,
				"failed", wu.Failed - prev.Failed, "took", last.Elapsed.Round(time.Millisecond)}
			if last.Err != nil {
				w.log.Warn("warmup ended early", append(attrs, "err", last.Err)...)
			} else {
				w.log.Info("warmup finished", attrs...)
			}
		case !prev.Running:
			w.log.Info("warmup started", "trigger", last.Trigger, "expected_entries", last.Total)
		}
	}
	if d := wu.Panics - prev.Panics; d > 0 {
		w.log.Error("automatic warmup panicked (recovered)", "count", d)
	}
	w.last = s
}

func (w *watcher) nodes(t, prev tier.TierStats) {
	before := make(map[string]tier.NodeStats, len(prev.Nodes))
	for _, n := range prev.Nodes {
		before[n.Addr] = n
	}
	for _, n := range t.Nodes {
		old, known := before[n.Addr]
		switch {
		case !known:
			w.log.Info("node joined", "tier", t.Name, "node", n.Name, "addr", n.Addr, "state", n.State)
		case old.State == n.State:
		case n.State == "up":
			w.log.Info("node up", "tier", t.Name, "node", n.Name, "addr", n.Addr, "was", old.State)
		default:
			w.log.Warn("node "+n.State, "tier", t.Name, "node", n.Name, "addr", n.Addr, "was", old.State,
				"errors", n.Counters["errors"])
		}
		delete(before, n.Addr)
	}
	for _, n := range before {
		w.log.Info("node left", "tier", t.Name, "node", n.Name, "addr", n.Addr)
	}
}

// isRestartCounter reports whether a tier counter counts restarts or
// flushes of its servers that the tier detected (memcached's
// restarts_detected and flushes_detected).
func isRestartCounter(name string) bool {
	return strings.HasSuffix(name, "_detected")
}
