package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tiercache/tiercache/tier"
)

// twoTierCache is a chain over two in-memory tiers, after one cold Get, one
// hot Get and one Get of a key the source lacks.
func twoTierCache(t *testing.T) *tier.Cache {
	t.Helper()
	src := tier.LoaderFunc(func(_ context.Context, keys []string) (map[string][]byte, error) {
		out := map[string][]byte{}
		for _, k := range keys {
			if k != "absent" {
				out[k] = []byte("v")
			}
		}
		return out, nil
	})
	cache, err := tier.New(src, tier.WithTier(newMemTier("memcached"), time.Minute),
		tier.WithTier(newMemTier("bbolt"), time.Hour), tier.WithNegativeTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	ctx := context.Background()
	for _, k := range []string{"k", "k", "absent"} {
		_, _ = cache.Get(ctx, k)
		// The chain fills the tiers after answering: the second Get must
		// find the first one's value in the top tier.
		for cache.Stats().Fills.Pending > 0 {
			time.Sleep(time.Millisecond)
		}
	}
	return cache
}

func TestCollector(t *testing.T) {
	t.Parallel()
	cache := twoTierCache(t)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(cache))
	want := `
# HELP tiercache_tier_hits_total Lookups the tier answered with a fresh entry.
# TYPE tiercache_tier_hits_total counter
tiercache_tier_hits_total{tier="bbolt"} 0
tiercache_tier_hits_total{tier="memcached"} 1
# HELP tiercache_loader_statements_total Load calls on the source (one SQL statement each with the SQL loader).
# TYPE tiercache_loader_statements_total counter
tiercache_loader_statements_total 2
# HELP tiercache_loader_not_found_total Keys the source does not have.
# TYPE tiercache_loader_not_found_total counter
tiercache_loader_not_found_total 1
# HELP tiercache_store_queue_depth The tier's own queue_depth (tier.Counter).
# TYPE tiercache_store_queue_depth gauge
tiercache_store_queue_depth{tier="bbolt"} 3
tiercache_store_queue_depth{tier="memcached"} 3
# HELP tiercache_store_gc_runs_total The tier's own gc_runs count (tier.Counter).
# TYPE tiercache_store_gc_runs_total counter
tiercache_store_gc_runs_total{tier="bbolt"} 7
tiercache_store_gc_runs_total{tier="memcached"} 7
# HELP tiercache_node_up 1 when the node is up, 0 when it is down or being probed.
# TYPE tiercache_node_up gauge
tiercache_node_up{addr="127.0.0.1:1",node="cache-a",tier="bbolt"} 1
tiercache_node_up{addr="127.0.0.1:1",node="cache-a",tier="memcached"} 1
tiercache_node_up{addr="127.0.0.1:2",node="cache-b",tier="bbolt"} 0
tiercache_node_up{addr="127.0.0.1:2",node="cache-b",tier="memcached"} 0
# HELP tiercache_node_connections The node's connections.
# TYPE tiercache_node_connections gauge
tiercache_node_connections{node="cache-a",tier="bbolt"} 4
tiercache_node_connections{node="cache-a",tier="memcached"} 4
# HELP tiercache_gets_total Keys asked for through Get.
# TYPE tiercache_gets_total counter
tiercache_gets_total 3
# HELP tiercache_warmup_running 1 while a warmup is copying the durable tier upwards.
# TYPE tiercache_warmup_running gauge
tiercache_warmup_running 0
# HELP tiercache_lease_won_total Leases this process was given: it loaded the key for every process.
# TYPE tiercache_lease_won_total counter
tiercache_lease_won_total 0
# HELP tiercache_refresh_done_total Background refreshes that wrote a new value.
# TYPE tiercache_refresh_done_total counter
tiercache_refresh_done_total 0
`
	err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"tiercache_tier_hits_total", "tiercache_loader_statements_total", "tiercache_loader_not_found_total",
		"tiercache_store_queue_depth", "tiercache_store_gc_runs_total", "tiercache_node_up",
		"tiercache_node_connections", "tiercache_gets_total", "tiercache_warmup_running",
		"tiercache_lease_won_total", "tiercache_refresh_done_total")
	if err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.CollectAndLint(NewCollector(cache)); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

func TestStatsHandlerShape(t *testing.T) {
	t.Parallel()
	cache := twoTierCache(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(cache))
	srv := httptest.NewServer(Handler(cache, reg))
	defer srv.Close()

	for _, path := range []string{"/stats", "/"} {
		body := get(t, srv.URL+path, http.StatusOK)
		var top map[string]any
		if err := json.Unmarshal(body, &top); err != nil {
			t.Fatalf("%s: %v\n%s", path, err, body)
		}
		// twemproxy's leading fields, in its order.
		if keys := objectKeys(t, body); strings.Join(keys[:7], ",") != "service,source,version,uptime,timestamp,total_connections,curr_connections" {
			t.Errorf("%s: leading keys %v", path, keys)
		}
		if top["service"] != "tiercache" {
			t.Errorf("service = %v", top["service"])
		}
		if ts := top["timestamp"].(float64); time.Since(time.Unix(int64(ts), 0)) > time.Minute {
			t.Errorf("timestamp = %v", ts)
		}
		mc := top["memcached"].(map[string]any)
		for field, want := range map[string]float64{"hits": 1, "misses": 2, "forward_error": 0, "server_ejects": 3, "store_gc_runs": 7} {
			if mc[field] != want {
				t.Errorf("memcached.%s = %v, want %v", field, mc[field], want)
			}
		}
		a := mc["cache-a"].(map[string]any)
		for field, want := range map[string]float64{"server_err": 1, "server_timedout": 1, "server_connections": 4, "requests": 10, "server_up": 1, "hits": 9} {
			if a[field] != want {
				t.Errorf("memcached.cache-a.%s = %v, want %v", field, a[field], want)
			}
		}
		if b := mc["cache-b"].(map[string]any); b["server_up"] != 0.0 {
			t.Errorf("cache-b server_up = %v, want 0", b["server_up"])
		}
		if _, ok := top["bbolt"].(map[string]any); !ok {
			t.Errorf("no bbolt pool in %s", body)
		}
		for field, want := range map[string]float64{"loader_statements": 2, "chain_gets": 3, "curr_connections": 8, "warmup_running": 0} {
			if top[field] != want {
				t.Errorf("%s = %v, want %v", field, top[field], want)
			}
		}
	}

	metricsBody := get(t, srv.URL+"/metrics", http.StatusOK)
	if !bytes.Contains(metricsBody, []byte(`tiercache_tier_hits_total{tier="memcached"} 1`)) {
		t.Errorf("/metrics lacks the tier hits:\n%s", metricsBody)
	}
	get(t, srv.URL+"/nope", http.StatusNotFound)
	resp, err := http.Post(srv.URL+"/stats", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /stats = %d", resp.StatusCode)
	}
}

func get(t *testing.T, url string, want int) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s = %d, want %d: %s", url, resp.StatusCode, want, body)
	}
	return body
}

// objectKeys returns the top-level keys of a JSON object in order.
func objectKeys(t *testing.T, body []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestStatsObjectUptime(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	obj := StatsObject(tier.Stats{}, "host", "v1", 90*time.Second, now)
	body, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"service":"tiercache","source":"host","version":"v1","uptime":90,"timestamp":1800000000,` +
		`"total_connections":0,"curr_connections":0,` +
		`"chain_gets":0,"chain_multi_keys":0,"chain_flights":0,"chain_shared_waits":0,"chain_stale_served":0,"chain_invalidations":0,` +
		`"loader_statements":0,"loader_keys":0,"loader_loaded":0,"loader_not_found":0,"loader_errors":0,"loader_panics":0,` +
		`"warmup_running":0,"warmup_runs":0,"warmup_auto_runs":0,"warmup_restarts":0,"warmup_panics":0,"warmup_scanned":0,` +
		`"warmup_sent":0,"warmup_written":0,"warmup_skipped":0,"warmup_present":0,"warmup_failed":0,"warmup_last_total":0,` +
		`"warmup_last_scanned":0,"warmup_last_eta_seconds":0}`
	if string(body) != want {
		t.Fatalf("got  %s\nwant %s", body, want)
	}
}
