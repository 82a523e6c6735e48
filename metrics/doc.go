// Package metrics exposes a tiercache chain to operators: Prometheus
// metrics through client_golang, latency histograms fed by the chain's
// observer hooks (tier.Observer), and an http.Handler that serves the
// chain's stats as twemproxy's stats port does, so that the dashboards and
// collectors written for nutcracker read tiercache too.
//
// The core packages (tier, store/..., loader/...) do not import Prometheus:
// everything here works from the outside, through tier.Cache.Stats and the
// reports the chain makes to a tier.Observer. Nothing wraps a tier, so a
// tier keeps every optional interface it has, and the stores stay
// reachable as themselves.
//
// # Basics
//
//	timings := metrics.NewTimings()
//	cache, err := tier.New(src, tier.WithTier(mc, ttl), tier.WithTier(disk, ttl),
//		tier.WithObserver(timings.Observer()))
//	...
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.NewCollector(cache), timings)
//	http.Handle("/", metrics.Handler(cache, reg))  // /stats and /metrics
//
// # Metric names
//
// Chain counters, one per counter of tier.Stats (Stats.List and
// TierStats.List name them): tiercache_tier_{hits,misses,errors,backfills}_total
// {tier}; tiercache_loader_{statements,keys,loaded,not_found,errors,panics}_total;
// tiercache_{gets,multi_keys,flights,shared_waits,stale_served,invalidations}_total;
// tiercache_fills_{done,panics}_total and the level tiercache_fills_pending;
// tiercache_lease_NAME_total, tiercache_refresh_NAME_total and
// tiercache_warmup_{runs,auto_runs,restarts,panics,scanned,sent,written,
// skipped,present,failed}_total. The running or last warmup:
// tiercache_warmup_running, tiercache_warmup_last_{expected,scanned,
// eta_seconds}, and tiercache_warmup_last_fraction once the size of the
// scan is known. A tier's own counters (tier.Counter) become
// tiercache_store_NAME_total{tier}, or tiercache_store_NAME{tier} for the
// ones that are levels (queue_depth, pending, entries, bytes...), except
// hits, which tiercache_tier_hits_total already counts. Nodes
// (tier.NodeReporter): tiercache_node_up{tier,node,addr},
// tiercache_node_state{tier,node,state} (a series for each of up, down and
// probing, 1 under the current one), tiercache_node_ejected_timestamp_seconds
// {tier,node} and tiercache_node_NAME_total{tier,node}. Latency:
// tiercache_tier_duration_seconds{tier,op,result},
// tiercache_loader_duration_seconds{result} and tiercache_loader_batch_keys.
// docs/operations.md lists the names that changed.
//
// # The stats JSON
//
// StatsHandler answers with one JSON object shaped like nutcracker's stats
// port output: "service", "source", "version", "uptime", "timestamp", then
// one object per pool holding pool counters and one object per server. See
// docs/operations.md for how each of tiercache's counters maps to
// twemproxy's names.
package metrics
