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

// StatsHandler serves a cache's stats as one JSON object shaped like the
// output of twemproxy's stats port:
//
//	{"service":"tiercache", "source":HOST, "version":V, "uptime":SECONDS,
//	 "timestamp":UNIX,
//	 "memcached": {"hits":..., "misses":..., "forward_error":..., ...,
//	               "cache-a": {"server_err":..., "server_timedout":..., "requests":..., ...}},
//	 "bbolt":     {...},
//	 "loader":    {...}, "chain": {...}, "warmup": {...}}
//
// Each tier is a pool and each node a server, under twemproxy's field names
// where tiercache has the same quantity (docs/operations.md lists the
// mapping). It is safe for concurrent use.
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
	body, err := json.Marshal(h.Snapshot())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}

// Snapshot returns the JSON object ServeHTTP writes, ready for
// json.Marshal, with its keys in twemproxy's order.
func (h *StatsHandler) Snapshot() Object {
	now := h.now()
	return StatsObject(h.cache.Stats(), h.source, h.version, now.Sub(h.start), now)
}

// StatsObject shapes s as twemproxy's stats output (see StatsHandler).
func StatsObject(s tier.Stats, source, version string, uptime time.Duration, now time.Time) Object {
	out := Object{
		{"service", "tiercache"},
		{"source", source},
		{"version", version},
		{"uptime", int64(uptime / time.Second)},
		{"timestamp", now.Unix()},
	}
	for _, t := range s.Tiers {
		pool := Object{
			{"hits", t.Hits},
			{"misses", t.Misses},
			{"forward_error", t.Errors},
			{"backfills", t.Backfills},
		}
		var ejects int64
		for _, n := range t.Nodes {
			ejects += n.Counters["ejections"]
		}
		if len(t.Nodes) > 0 {
			pool = append(pool, Field{"server_ejects", ejects})
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
		out = append(out, Field{t.Name, pool})
	}
	l := s.Loader
	out = append(out, Field{"loader", Object{
		{"statements", l.Statements},
		{"keys", l.Keys},
		{"loaded", l.Loaded},
		{"not_found", l.NotFound},
		{"errors", l.Errors},
		{"panics", l.Panics},
	}})
	out = append(out, Field{"chain", Object{
		{"gets", s.Gets},
		{"multi_keys", s.MultiKeys},
		{"flights", s.Flights},
		{"shared_waits", s.SharedWaits},
		{"stale_served", s.StaleServed},
		{"invalidations", s.Invalidations},
	}})
	w := s.Warmup
	running := int64(0)
	if w.Running {
		running = 1
	}
	out = append(out, Field{"warmup", Object{
		{"running", running},
		{"runs", w.Runs},
		{"auto_runs", w.AutoRuns},
		{"restarts", w.Restarts},
		{"panics", w.Panics},
		{"scanned", w.Scanned},
		{"sent", w.Sent},
		{"written", w.Written},
		{"skipped", w.Skipped},
		{"present", w.Present},
		{"failed", w.Failed},
		{"last_total", w.Last.Total},
		{"last_scanned", w.Last.Scanned},
		{"last_eta_seconds", int64(w.Last.ETA / time.Second)},
	}})
	return out
}

// serverFields maps a node counter to twemproxy's name for the same
// quantity. Counters not listed keep their own names.
var serverFields = map[string]string{
	"eof":              "server_eof",
	"errors":           "server_err",
	"timeouts":         "server_timedout",
	"connections":      "server_connections",
	"open_connections": "server_connections",
	"conns":            "server_connections",
	"ejected_at":       "server_ejected_at",
	"requests":         "requests",
	"request_bytes":    "request_bytes",
	"responses":        "responses",
	"response_bytes":   "response_bytes",
}

// serverOrder is the order twemproxy writes a server's fields in.
var serverOrder = []string{"server_eof", "server_err", "server_timedout", "server_connections",
	"server_ejected_at", "requests", "request_bytes", "responses", "response_bytes"}

func serverObject(n tier.NodeStats) Object {
	known := map[string]int64{}
	var rest Object
	for _, name := range sortedKeys(n.Counters) {
		if tw, ok := serverFields[name]; ok {
			known[tw] = n.Counters[name]
		} else {
			rest = append(rest, Field{name, n.Counters[name]})
		}
	}
	obj := Object{}
	for _, name := range serverOrder {
		if v, ok := known[name]; ok {
			obj = append(obj, Field{name, v})
		}
	}
	up := int64(0)
	if n.State == "up" {
		up = 1
	}
	obj = append(obj, Field{"server_up", up})
	return append(obj, rest...)
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

// Handler serves a cache's stats: /metrics from reg in Prometheus's
// format, and the twemproxy-shaped JSON at /stats and at / (twemproxy's
// stats port answers anything with it).
func Handler(cache *tier.Cache, reg prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	stats := NewStatsHandler(cache)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/stats", stats)
	mux.Handle("/{$}", stats)
	return mux
}
