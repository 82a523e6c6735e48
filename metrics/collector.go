package metrics

import (
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tiercache/tiercache/tier"
)

// Collector exports a cache's Stats as Prometheus metrics, read afresh at
// every scrape. It is safe for concurrent use. Create it with NewCollector.
//
// It is an unchecked collector (Describe sends nothing): the tiers' own
// counters and the nodes are only known once the cache reports them.
type Collector struct {
	cache *tier.Cache
}

// NewCollector returns a Collector over cache.
func NewCollector(cache *tier.Cache) *Collector { return &Collector{cache: cache} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.cache.Stats()
	e := emitter{ch: ch}

	for _, t := range s.Tiers {
		for _, v := range []struct {
			name string
			n    int64
			help string
		}{
			{"hits", t.Hits, "Lookups the tier answered with a fresh entry."},
			{"misses", t.Misses, "Lookups the tier could not answer (absent, expired or failed)."},
			{"errors", t.Errors, "Failed operations on the tier, lookups and writes."},
			{"backfills", t.Backfills, "Entries the chain wrote into the tier after finding them lower down."},
		} {
			e.counter("tiercache_tier_"+v.name+"_total", v.help, v.n, "tier", t.Name)
		}
		for _, name := range sortedKeys(t.Counters) {
			metric := "tiercache_store_" + sanitize(name)
			if isLevel(name) {
				e.gauge(metric, "The tier's own "+name+" (tier.Counter).", t.Counters[name], "tier", t.Name)
			} else {
				e.counter(metric+"_total", "The tier's own "+name+" count (tier.Counter).", t.Counters[name], "tier", t.Name)
			}
		}
		for _, n := range t.Nodes {
			up := int64(0)
			if n.State == "up" {
				up = 1
			}
			e.gauge("tiercache_node_up", "1 when the node is up, 0 when it is down or being probed.", up, "tier", t.Name, "node", n.Name, "addr", n.Addr)
			e.gauge("tiercache_node_state", "The node's state, as a 1 under its state label.", 1, "tier", t.Name, "node", n.Name, "state", n.State)
			for _, name := range sortedKeys(n.Counters) {
				metric := "tiercache_node_" + sanitize(name)
				if isLevel(name) {
					e.gauge(metric, "The node's "+name+".", n.Counters[name], "tier", t.Name, "node", n.Name)
				} else {
					e.counter(metric+"_total", "The node's "+name+" count.", n.Counters[name], "tier", t.Name, "node", n.Name)
				}
			}
		}
	}

	l := s.Loader
	for _, v := range []struct {
		name string
		n    int64
		help string
	}{
		{"statements", l.Statements, "Load calls on the source (one SQL statement each with the SQL loader)."},
		{"keys", l.Keys, "Keys asked of the source."},
		{"loaded", l.Loaded, "Keys the source returned."},
		{"not_found", l.NotFound, "Keys the source does not have."},
		{"errors", l.Errors, "Failed Load calls."},
		{"panics", l.Panics, "Loads that panicked."},
	} {
		e.counter("tiercache_loader_"+v.name+"_total", v.help, v.n)
	}

	for _, v := range []struct {
		name string
		n    int64
		help string
	}{
		{"gets", s.Gets, "Keys asked for through Get."},
		{"multi_keys", s.MultiKeys, "Keys asked for through GetMulti."},
		{"flights", s.Flights, "Loads started below the top tier (singleflight leaders)."},
		{"shared_waits", s.SharedWaits, "Callers that joined a load another caller had started."},
		{"stale_served", s.StaleServed, "Expired copies served because the source failed (stale-if-error)."},
		{"invalidations", s.Invalidations, "Keys passed to Set and Delete."},
	} {
		e.counter("tiercache_"+v.name+"_total", v.help, v.n)
	}

	ls := s.Leases
	for _, v := range []struct {
		name string
		n    int64
		help string
	}{
		{"requests", ls.Requests, "Keys whose lease was asked for (again at every poll)."},
		{"won", ls.Won, "Leases this process was given: it loaded the key for every process."},
		{"hits", ls.Hits, "Lease requests answered with a value another process had filled."},
		{"waits", ls.Waits, "Keys whose lease another process held while this one missed them."},
		{"wait_hits", ls.WaitHits, "Waits the holder's fill answered."},
		{"timeouts", ls.Timeouts, "Waits that reached the wait limit; the key was then loaded here."},
		{"polls", ls.Polls, "Round trips spent waiting for another process's fill."},
		{"fills", ls.Fills, "Values written into the top tier through a lease."},
		{"refused", ls.Refused, "Fills refused because an invalidation came first."},
		{"released", ls.Released, "Leases given up after a failed load."},
		{"rejected", ls.Rejected, "Durable copies not served: loaded before the key's last invalidation."},
		{"fallbacks", ls.Fallbacks, "Keys loaded with in-process singleflight only (lease unavailable)."},
		{"markers", ls.Markers, "Invalidation markers written by Set and Delete."},
		{"rejoins", ls.Rejoins, "Callers that reloaded instead of joining a load older than their arrival."},
	} {
		e.counter("tiercache_lease_"+v.name+"_total", v.help, v.n)
	}
	rf := s.Refresh
	for _, v := range []struct {
		name string
		n    int64
		help string
	}{
		{"early", rf.Early, "Hits that drew an early refresh."},
		{"stale_served", rf.StaleServed, "Expired values answered within the stale-while-revalidate grace."},
		{"started", rf.Started, "Background refreshes begun."},
		{"done", rf.Done, "Background refreshes that wrote a new value."},
		{"skipped", rf.Skipped, "Background refreshes another process was already doing."},
		{"failed", rf.Failed, "Background refreshes whose load or lease request failed."},
		{"panics", rf.Panics, "Background refreshes that panicked."},
		{"throttled", rf.Throttled, "Refreshes not started: the concurrency limit was reached."},
	} {
		e.counter("tiercache_refresh_"+v.name+"_total", v.help, v.n)
	}

	w := s.Warmup
	running := int64(0)
	if w.Running {
		running = 1
	}
	e.gauge("tiercache_warmup_running", "1 while a warmup is copying the durable tier upwards.", running)
	for _, v := range []struct {
		name string
		n    int64
		help string
	}{
		{"runs", w.Runs, "Warmups started."},
		{"auto_runs", w.AutoRuns, "Warmups started by a restart the top tier reported (automatic warmup)."},
		{"restarts", w.Restarts, "Server restarts or flushes the top tier reported."},
		{"panics", w.Panics, "Panics recovered in automatic warmups."},
		{"scanned", w.Scanned, "Entries read from the durable tier by warmups."},
		{"sent", w.Sent, "Entries warmups handed to the tiers above."},
		{"written", w.Written, "Entries warmups added to the tiers above."},
		{"skipped", w.Skipped, "Entries warmups skipped: expired, negative or invalidated."},
		{"present", w.Present, "Entries warmups found already present above."},
		{"failed", w.Failed, "Entries warmups could not write."},
	} {
		e.counter("tiercache_warmup_"+v.name+"_total", v.help, v.n)
	}
	last := w.Last
	e.gauge("tiercache_warmup_last_expected", "Entries the running or last warmup expects to scan (0: unknown).", last.Total)
	e.gauge("tiercache_warmup_last_scanned", "Entries the running or last warmup has scanned.", last.Scanned)
	e.gaugeFloat("tiercache_warmup_last_fraction", "How much of the running or last warmup's scan is done, 0 to 1 (-1: unknown).", last.Fraction())
	e.gaugeFloat("tiercache_warmup_last_eta_seconds", "Estimated time left in the running warmup (0: unknown or done).", last.ETA.Seconds())
}

// emitter sends const metrics, building their descriptions on the fly.
type emitter struct{ ch chan<- prometheus.Metric }

func (e emitter) counter(name, help string, v int64, labels ...string) {
	e.send(name, help, prometheus.CounterValue, v, labels)
}

func (e emitter) gauge(name, help string, v int64, labels ...string) {
	e.send(name, help, prometheus.GaugeValue, v, labels)
}

func (e emitter) gaugeFloat(name, help string, v float64, labels ...string) {
	e.sendFloat(name, help, prometheus.GaugeValue, v, labels)
}

func (e emitter) send(name, help string, typ prometheus.ValueType, v int64, labels []string) {
	e.sendFloat(name, help, typ, float64(v), labels)
}

func (e emitter) sendFloat(name, help string, typ prometheus.ValueType, v float64, labels []string) {
	var names, values []string
	for i := 0; i+1 < len(labels); i += 2 {
		names = append(names, labels[i])
		values = append(values, labels[i+1])
	}
	desc := prometheus.NewDesc(name, help, names, nil)
	m, err := prometheus.NewConstMetric(desc, typ, v, values...)
	if err != nil {
		m = prometheus.NewInvalidMetric(desc, err)
	}
	e.ch <- m
}

// isLevel reports whether a tier's or node's counter is a level that goes
// up and down (a gauge) rather than a count that only grows.
func isLevel(name string) bool {
	switch name {
	case "queue_depth", "pending", "entries", "bytes", "quarantined", "state", "up", "weight",
		"discovery_version", "pending_invalidations", "lease_protocol_meta", "lease_protocol_classic":
		return true
	}
	for _, suffix := range []string{"_depth", "connections", "_conns", "_at", "_inflight", "in_flight"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// sanitize makes name usable in a metric name: [a-zA-Z0-9_] only.
func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, name)
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
