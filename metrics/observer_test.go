package metrics

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// reportingTier is an in-memory tier that reports counters of its own and
// two servers, as the memcached tier does.
type reportingTier struct{ *tiertest.Tier }

func newMemTier(name string) reportingTier { return reportingTier{tiertest.MustNew(name)} }

func (reportingTier) Counters() map[string]int64 {
	return map[string]int64{"queue_depth": 3, "gc_runs": 7, "hits": 9}
}

func (reportingTier) NodeStats() []tier.NodeStats {
	return []tier.NodeStats{
		{Name: "cache-a", Addr: "127.0.0.1:1", State: "up", Counters: map[string]int64{"requests": 10, "errors": 1, "timeouts": 1, "ejections": 2, "connections": 4, "hits": 9, "ejected_at": 1_700_000_000_500_000}},
		{Name: "cache-b", Addr: "127.0.0.1:2", State: "down", Counters: map[string]int64{"requests": 5, "ejections": 1, "ejected_at": 0}},
	}
}

// settle waits for the fills the chain makes after answering.
func settle(t *testing.T, cache *tier.Cache) {
	t.Helper()
	testenv.WaitFor(t, "the fills", func() bool { return cache.Stats().Fills.Pending == 0 })
}

func histogramCount(t *testing.T, o prometheus.Observer) int {
	t.Helper()
	m := &dto.Metric{}
	if err := o.(prometheus.Histogram).Write(m); err != nil {
		t.Fatal(err)
	}
	return int(m.GetHistogram().GetSampleCount())
}

// TestObserverTimesTierCalls runs a two-tier chain with the Timings'
// observer and checks each call landed under its tier, operation and
// result.
func TestObserverTimesTierCalls(t *testing.T) {
	t.Parallel()
	tm := NewTimings()
	top, bottom := tiertest.MustNew("top"), tiertest.MustNew("bottom")
	src := tier.LoaderFunc(func(_ context.Context, keys []string) (map[string][]byte, error) {
		return map[string][]byte{keys[0]: []byte("v")}, nil
	})
	cache, err := tier.New(src, tier.WithTier(top, time.Minute), tier.WithTier(bottom, time.Hour),
		tier.WithObserver(tm.Observer()))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	ctx := context.Background()
	for range 3 {
		if _, err := cache.Get(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		settle(t, cache)
	}
	if err := cache.Set(ctx, "k", []byte("w")); err != nil {
		t.Fatal(err)
	}
	if err := cache.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.GetMulti(ctx, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	settle(t, cache)
	cases := []struct {
		tier, op, result string
		want             int
	}{
		{"top", "get", "miss", 1},
		{"top", "get", "hit", 2},
		{"top", "add", "ok", 2}, // k, then a from the GetMulti
		{"bottom", "get", "miss", 1},
		{"bottom", "add", "ok", 2},
		{"top", "set", "ok", 1},
		{"bottom", "set", "ok", 1},
		{"top", "delete", "ok", 1},
		{"bottom", "delete", "ok", 1},
		{"top", "get_multi", "ok", 1},
		{"bottom", "get_multi", "ok", 1},
	}
	for _, c := range cases {
		if got := histogramCount(t, tm.tier.WithLabelValues(c.tier, c.op, c.result)); got != c.want {
			t.Errorf("%s %s %s observed %d times, want %d", c.tier, c.op, c.result, got, c.want)
		}
	}
	if got := histogramCount(t, tm.loader.WithLabelValues("ok")); got != 2 {
		t.Errorf("loads observed %d times, want 2 (one Get, one GetMulti)", got)
	}
	if problems, err := testutil.CollectAndLint(tm); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

func TestObserverTimesFailedLoads(t *testing.T) {
	t.Parallel()
	tm := NewTimings()
	boom := errors.New("boom")
	cache, err := tier.New(tier.LoaderFunc(func(context.Context, []string) (map[string][]byte, error) {
		return nil, boom
	}), tier.WithObserver(tm.Observer()))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	if _, err := cache.Get(context.Background(), "k"); !errors.Is(err, boom) {
		t.Fatalf("Get = %v, want the loader's error", err)
	}
	if got := histogramCount(t, tm.loader.WithLabelValues("error")); got != 1 {
		t.Errorf("failed loads observed %d times, want 1", got)
	}
	if got := histogramCount(t, tm.loader.WithLabelValues("ok")); got != 0 {
		t.Errorf("ok loads observed %d times, want 0", got)
	}
	if got := histogramCount(t, tm.batch); got != 1 {
		t.Errorf("batch sizes observed %d times, want 1", got)
	}
}

func TestResult(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return errors.Join(errors.New("context"), err) }
	cases := []struct {
		op   tier.Op
		err  error
		want string
	}{
		{tier.OpGet, nil, "hit"},
		{tier.OpSet, nil, "ok"},
		{tier.OpGet, wrap(tier.ErrMiss), "miss"},
		{tier.OpAdd, wrap(tier.ErrNotStored), "not_stored"},
		{tier.OpSet, wrap(tier.ErrTooLarge), "too_large"},
		{tier.OpDelete, errors.New("reset"), "error"},
	}
	for _, c := range cases {
		if got := result(c.op, c.err); got != c.want {
			t.Errorf("result(%s, %v) = %q, want %q", c.op, c.err, got, c.want)
		}
	}
}

// TestBucketsAreRound checks the histograms' bounds print as an operator
// reads them (le="0.00025", not le="1.0819408888151615e-05"), and that
// slow SQL has buckets beyond 2.5 s.
func TestBucketsAreRound(t *testing.T) {
	t.Parallel()
	for _, b := range append(append([]float64{}, tierBuckets...), loaderBuckets...) {
		mantissa, _, _ := strings.Cut(strconv.FormatFloat(b, 'e', -1, 64), "e")
		if digits := strings.ReplaceAll(mantissa, ".", ""); len(digits) > 2 {
			t.Errorf("bucket %v is not a round bound", b)
		}
	}
	if last := loaderBuckets[len(loaderBuckets)-1]; last <= 2.5 {
		t.Errorf("the loader's last bucket is %v s, want beyond 2.5 s", last)
	}
}

// TestCollectorNames checks the metrics renamed for Prometheus's
// conventions: a node state series per state, the ejection time in
// seconds, no duplicate of the tier hits, no fraction while unknown.
func TestCollectorNames(t *testing.T) {
	t.Parallel()
	cache := twoTierCache(t)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(cache))
	want := `
# HELP tiercache_node_state 1 under the node's current state (up, down, probing), 0 under the others.
# TYPE tiercache_node_state gauge
tiercache_node_state{node="cache-a",state="down",tier="memcached"} 0
tiercache_node_state{node="cache-a",state="probing",tier="memcached"} 0
tiercache_node_state{node="cache-a",state="up",tier="memcached"} 1
tiercache_node_state{node="cache-b",state="down",tier="memcached"} 1
tiercache_node_state{node="cache-b",state="probing",tier="memcached"} 0
tiercache_node_state{node="cache-b",state="up",tier="memcached"} 0
# HELP tiercache_node_ejected_timestamp_seconds When the node was last ejected, in Unix seconds; 0 if never.
# TYPE tiercache_node_ejected_timestamp_seconds gauge
tiercache_node_ejected_timestamp_seconds{node="cache-a",tier="memcached"} 1.7000000005e+09
tiercache_node_ejected_timestamp_seconds{node="cache-b",tier="memcached"} 0
`
	only := prometheus.NewPedanticRegistry()
	only.MustRegister(NewCollector(cache))
	if err := testutil.GatherAndCompare(filtered{only, "memcached"}, strings.NewReader(want),
		"tiercache_node_state", "tiercache_node_ejected_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}
	n, err := testutil.GatherAndCount(reg, "tiercache_store_hits_total", "tiercache_node_ejected_at", "tiercache_warmup_last_fraction")
	if err != nil || n != 0 {
		t.Fatalf("%d series of the old names (store_hits_total, node_ejected_at, warmup_last_fraction before any warmup), err %v", n, err)
	}
}

// filtered gathers only the series of one tier.
type filtered struct {
	g    prometheus.Gatherer
	tier string
}

func (f filtered) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := f.g.Gather()
	for _, mf := range mfs {
		var keep []*dto.Metric
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "tier" && l.GetValue() == f.tier {
					keep = append(keep, m)
				}
			}
		}
		mf.Metric = keep
	}
	return mfs, err
}
