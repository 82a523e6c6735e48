package metrics

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tiercache/tiercache/tier"
)

// StatsHandler serves a cache's stats as one JSON object in the shape of
// twemproxy's (nutcracker 0.5.0) stats port, so that the collectors written
// for it read tiercache too:
//
//	{"service":"tiercache", "source":HOST, "version":V, "uptime":SECONDS,
//	 "timestamp":UNIX, "total_connections":N, "curr_connections":N,
//	 "chain_gets":..., "loader_statements":..., "warmup_running":..., ...,
//	 "memcached": {"client_eof":0, ..., "server_ejects":..., "forward_error":...,
//	               "fragments":0, "hits":..., "misses":..., ...,
//	               "cache-a": {"server_eof":..., "server_err":..., ..., "out_queue_bytes":...,
//	                           "server_up":1, ...}},
//	 "bbolt":     {...}}
//
// Each tier is a pool and each memcached node a server, with every field
// nutcracker writes there (docs/operations.md gives each one's meaning in
// tiercache). Collectors take every object at the top level for a pool, so
// the chain's own figures (chain, loader, warmup) are numbers at the top
// level, prefixed, and never objects. It is safe for concurrent use.
type StatsHandler struct {
	cache   *tier.Cache
	source  string
	version string
	start   time.Time
	now     func() time.Time
}

// NewStatsHandler returns a StatsHandler over cache. uptime counts from
// now; "source" is the host name, "version" the module version the binary
// was built from.
func NewStatsHandler(cache *tier.Cache) *StatsHandler {
	host, _ := os.Hostname()
	return &StatsHandler{cache: cache, source: host, version: Version(), start: time.Now(), now: time.Now}
}

// ServeHTTP implements http.Handler.
func (h *StatsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := h.JSON()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// JSON is the stats object as the stats port writes it, newline included.
func (h *StatsHandler) JSON() ([]byte, error) {
	body, err := json.Marshal(h.Snapshot())
	if err != nil {
		return nil, err
	}
	return append(body, '\n'), nil
}

// Snapshot returns the JSON object ServeHTTP writes, ready for
// json.Marshal, with its keys in twemproxy's order.
func (h *StatsHandler) Snapshot() Object {
	now := h.now()
	return StatsObject(h.cache.Stats(), h.source, h.version, now.Sub(h.start), now)
}

// StatsObject shapes s as twemproxy's stats output (see StatsHandler).
func StatsObject(s tier.Stats, source, version string, uptime time.Duration, now time.Time) Object {
	var open, opened int64
	dials := false
	for _, t := range s.Tiers {
		for _, n := range t.Nodes {
			open += n.Counters["connections"]
			if d, ok := n.Counters["dials"]; ok {
				opened += d
				dials = true
			}
		}
	}
	if !dials {
		opened = open
	}
	out := Object{
		{"service", "tiercache"},
		{"source", source},
		{"version", version},
		{"uptime", int64(uptime / time.Second)},
		{"timestamp", now.Unix()},
		{"total_connections", opened},
		{"curr_connections", open},
	}
	out = append(out, chainFields(s)...)
	for _, t := range s.Tiers {
		out = append(out, Field{t.Name, poolObject(t)})
	}
	return out
}

// chainFields are the chain's own figures, as top-level numbers.
func chainFields(s tier.Stats) Object {
	l, w := s.Loader, s.Warmup
	running := int64(0)
	if w.Running {
		running = 1
	}
	return Object{
		{"chain_gets", s.Gets},
		{"chain_multi_keys", s.MultiKeys},
		{"chain_flights", s.Flights},
		{"chain_shared_waits", s.SharedWaits},
		{"chain_stale_served", s.StaleServed},
		{"chain_invalidations", s.Invalidations},
		{"loader_statements", l.Statements},
		{"loader_keys", l.Keys},
		{"loader_loaded", l.Loaded},
		{"loader_not_found", l.NotFound},
		{"loader_errors", l.Errors},
		{"loader_panics", l.Panics},
		{"warmup_running", running},
		{"warmup_runs", w.Runs},
		{"warmup_auto_runs", w.AutoRuns},
		{"warmup_restarts", w.Restarts},
		{"warmup_panics", w.Panics},
		{"warmup_scanned", w.Scanned},
		{"warmup_sent", w.Sent},
		{"warmup_written", w.Written},
		{"warmup_skipped", w.Skipped},
		{"warmup_present", w.Present},
		{"warmup_failed", w.Failed},
		{"warmup_last_total", w.Last.Total},
		{"warmup_last_scanned", w.Last.Scanned},
		{"warmup_last_eta_seconds", int64(w.Last.ETA / time.Second)},
	}
}

// poolObject is one tier as a twemproxy pool. The client_* fields and
// fragments count a proxy's client side, which a library has not: they are
// written, as 0, so that collectors find every field they expect.
func poolObject(t tier.TierStats) Object {
	var ejects int64
	for _, n := range t.Nodes {
		ejects += n.Counters["ejections"]
	}
	pool := Object{
		{"client_eof", int64(0)},
		{"client_err", int64(0)},
		{"client_connections", int64(0)},
		{"server_ejects", ejects},
		{"forward_error", t.Errors},
		{"fragments", int64(0)},
		{"hits", t.Hits},
		{"misses", t.Misses},
		{"backfills", t.Backfills},
	}
	for _, name := range sortedKeys(t.Counters) {
		pool = append(pool, Field{"store_" + name, t.Counters[name]})
	}
	for _, n := range t.Nodes {
		name := n.Name
		if name == "" {
			name = n.Addr
		}
		pool = append(pool, Field{name, serverObject(n)})
	}
	return pool
}

// serverFields are twemproxy's fields of a server, in its order, each
// with the node counter that holds the same quantity. A node that does
// not count one reports 0 for it.
var serverFields = []struct{ name, counter string }{
	{"server_eof", "eof"},
	{"server_err", "errors"},
	{"server_timedout", "timeouts"},
	{"server_connections", "connections"},
	{"server_ejected_at", "ejected_at"},
	{"requests", "requests"},
	{"request_bytes", "request_bytes"},
	{"responses", "responses"},
	{"response_bytes", "response_bytes"},
	{"in_queue", "in_queue"},
	{"in_queue_bytes", "in_queue_bytes"},
	{"out_queue", "out_queue"},
	{"out_queue_bytes", "out_queue_bytes"},
}

func serverObject(n tier.NodeStats) Object {
	used := map[string]bool{}
	obj := Object{}
	for _, f := range serverFields {
		obj = append(obj, Field{f.name, n.Counters[f.counter]})
		used[f.counter] = true
	}
	// Collectors expect numbers in a server: the state is two flags.
	up, probing := int64(0), int64(0)
	switch n.State {
	case "up":
		up = 1
	case "probing":
		probing = 1
	}
	obj = append(obj, Field{"server_up", up}, Field{"server_probing", probing})
	for _, name := range sortedKeys(n.Counters) {
		if !used[name] {
			obj = append(obj, Field{name, n.Counters[name]})
		}
	}
	return obj
}

// Object is a JSON object whose keys keep their order, as twemproxy's do.
type Object []Field

// Field is one key of an Object.
type Field struct {
	Key   string
	Value any
}

// MarshalJSON writes the fields in order.
func (o Object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Version is the version of the tiercache module the running binary was
// built with, "(devel)" for a build from a work tree.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	if bi.Main.Path == "github.com/tiercache/tiercache" {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/tiercache/tiercache" {
			return d.Version
		}
	}
	return "(devel)"
}

// Handler serves a cache's stats over HTTP: /metrics from reg in
// Prometheus's format, the twemproxy-shaped JSON at /stats, and at / the
// live page to a browser and the JSON to anything else (twemproxy's stats
// port answers anything with it).
func Handler(cache *tier.Cache, reg prometheus.Gatherer) http.Handler {
	return handler(NewStatsHandler(cache), reg)
}

func handler(stats *StatsHandler, reg prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/stats", stats)
	mux.Handle("/{$}", pageOrStats(stats))
	return mux
}
