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

// nodeStates are the states a node can be in; tiercache_node_state has a
// series for each, 1 for the node's current state and 0 for the others,
// so that no series vanishes when a node changes state.
var nodeStates = []string{"up", "down", "probing"}

// duplicates are the tiers' own counters left out of the metrics because
// a chain counter says the same: the memcached tier's hits are
// tiercache_tier_hits_total.
var duplicates = map[string]bool{"hits": true}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.cache.Stats()
	e := emitter{ch: ch}

	for _, t := range s.Tiers {
		for _, v := range t.List() {
			e.counter("tiercache_tier_"+v.Name+"_total", v.Help, v.Value, "tier", t.Name)
		}
		for _, name := range sortedKeys(t.Counters) {
			if duplicates[name] {
				continue
			}
			metric := "tiercache_store_" + sanitize(name)
			if isLevel(name) {
				e.gauge(metric, "The tier's own "+name+" (tier.Counter).", t.Counters[name], "tier", t.Name)
			} else {
				e.counter(metric+"_total", "The tier's own "+name+" count (tier.Counter).", t.Counters[name], "tier", t.Name)
			}
		}
		for _, n := range t.Nodes {
			c.collectNode(e, t.Name, n)
		}
	}

	for _, v := range s.List() {
		name := "tiercache_" + v.Name + "_total"
		if v.Group != "" {
			name = "tiercache_" + v.Group + "_" + v.Name + "_total"
		}
		e.counter(name, v.Help, v.Value)
	}

	e.gauge("tiercache_fills_pending", "Flights waiting to write, or writing, their values into the tiers after answering.", s.Fills.Pending)
	w := s.Warmup
	e.gauge("tiercache_warmup_running", "1 while a warmup is copying the durable tier upwards.", boolValue(w.Running))
	last := w.Last
	e.gauge("tiercache_warmup_last_expected", "Entries the running or last warmup expects to scan (0: unknown).", last.Total)
	e.gauge("tiercache_warmup_last_scanned", "Entries the running or last warmup has scanned.", last.Scanned)
	if f := last.Fraction(); f >= 0 {
		e.gaugeFloat("tiercache_warmup_last_fraction", "How much of the running or last warmup's scan is done, 0 to 1; absent while unknown.", f)
	}
	e.gaugeFloat("tiercache_warmup_last_eta_seconds", "Estimated time left in the running warmup (0: unknown or done).", last.ETA.Seconds())
}

// collectNode sends one server's state and counters.
func (c *Collector) collectNode(e emitter, tierName string, n tier.NodeStats) {
	e.gauge("tiercache_node_up", "1 when the node is up, 0 when it is down or being probed.", boolValue(n.State == "up"), "tier", tierName, "node", n.Name, "addr", n.Addr)
	for _, state := range nodeStates {
		e.gauge("tiercache_node_state", "1 under the node's current state (up, down, probing), 0 under the others.", boolValue(n.State == state), "tier", tierName, "node", n.Name, "state", state)
	}
	for _, name := range sortedKeys(n.Counters) {
		v := n.Counters[name]
		switch metric := "tiercache_node_" + sanitize(name); {
		case name == "ejected_at":
			// Unix microseconds in the tier, as twemproxy counts them.
			e.gaugeFloat("tiercache_node_ejected_timestamp_seconds", "When the node was last ejected, in Unix seconds; 0 if never.", float64(v)/1e6, "tier", tierName, "node", n.Name)
		case isLevel(name):
			e.gauge(metric, "The node's "+name+".", v, "tier", tierName, "node", n.Name)
		default:
			e.counter(metric+"_total", "The node's "+name+" count.", v, "tier", tierName, "node", n.Name)
		}
	}
}

func boolValue(b bool) int64 {
	if b {
		return 1
	}
	return 0
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
