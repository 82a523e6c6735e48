// Package metrics exposes a tiercache chain to operators: Prometheus
// metrics through client_golang, latency histograms fed by decorators
// around the tiers and the loader, and an http.Handler that serves the
// chain's stats as twemproxy's stats port does, so that the dashboards and
// collectors written for nutcracker read tiercache too.
//
// The core packages (tier, store/..., loader/...) do not import Prometheus:
// everything here works from the outside, through tier.Cache.Stats and the
// tier.Tier and tier.Loader interfaces.
//
// # Basics
//
//	timings := metrics.NewTimings()
//	mc = metrics.InstrumentTier(mc, timings)      // before tier.WithTier
//	disk = metrics.InstrumentTier(disk, timings)
//	src = metrics.InstrumentLoader(src, timings)
//	cache, err := tier.New(src, tier.WithTier(mc, ttl), tier.WithTier(disk, ttl))
//	...
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.NewCollector(cache), timings)
//	http.Handle("/", metrics.Handler(cache, reg))  // /stats and /metrics
//
// # Decorators keep the tier's shape
//
// The chain finds a tier's optional abilities by type assertion: add for
// backfill, multi-get, scan for warmup, counters and per-node stats. A
// wrapper that lost one would change what the chain does (a backfill that
// overwrites instead of adding, a warmup with nothing to scan), so
// InstrumentTier returns a value with exactly the optional interfaces of
// the tier it wraps, among tier.Adder, tier.MultiGetter, tier.Scanner,
// tier.Counter, tier.NodeReporter and the others package tier defines
// (HotScanner, Sized, BulkAdder, RestartWatcher, Leaser). It always has
// Name and Close, which
// forward when the tier has them and otherwise behave as if absent (an
// empty name, a Close that does nothing).
//
// # Metric names
//
// Chain counters: tiercache_tier_{hits,misses,errors,backfills}_total
// {tier}; tiercache_loader_{statements,keys,loaded,not_found,errors,panics}_total;
// tiercache_{gets,multi_keys,flights,shared_waits,stale_served,invalidations}_total;
// tiercache_warmup_running, tiercache_warmup_last_{expected,scanned,
// fraction,eta_seconds} (the running or last warmup) and
// tiercache_warmup_{runs,auto_runs,restarts,panics,scanned,sent,written,
// skipped,present,failed}_total. A tier's own counters (tier.Counter) become
// tiercache_store_NAME_total{tier}, or tiercache_store_NAME{tier} for the
// ones that are levels (queue_depth, pending, entries, bytes...). Nodes
// (tier.NodeReporter): tiercache_node_up{tier,node,addr},
// tiercache_node_state{tier,node,state} and tiercache_node_NAME_total
// {tier,node}. Latency: tiercache_tier_duration_seconds{tier,op,result},
// tiercache_loader_duration_seconds{result} and tiercache_loader_batch_keys.
//
// # The stats JSON
//
// StatsHandler answers with one JSON object shaped like nutcracker's stats
// port output: "service", "source", "version", "uptime", "timestamp", then
// one object per pool holding pool counters and one object per server. See
// docs/operations.md for how each of tiercache's counters maps to
// twemproxy's names.
package metrics
