package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tiercache/tiercache/tier"
)

// Timings holds the latency histograms of a chain's tier and loader calls,
// fed by the tier.Observer that Observer returns. It is a
// prometheus.Collector: register it once. It is safe for concurrent use,
// and one Timings serves every tier of a chain (they are told apart by the
// tier label).
type Timings struct {
	tier   *prometheus.HistogramVec
	loader *prometheus.HistogramVec
	batch  prometheus.Histogram
}

// tierBuckets span a bbolt read of a few microseconds to a memcached
// timeout, at round bounds an operator can read.
var tierBuckets = []float64{
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
}

// loaderBuckets span a point select on a warm database to a statement
// stuck behind locks.
var loaderBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
}

// NewTimings returns empty histograms.
func NewTimings() *Timings {
	t := &Timings{
		tier: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tiercache_tier_duration_seconds",
			Help:    "Time taken by the chain's calls on a tier, by operation (get, get_multi, set, add, add_bulk, delete) and result (hit, miss, ok, not_stored, too_large, error).",
			Buckets: tierBuckets,
		}, []string{"tier", "op", "result"}),
		loader: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tiercache_loader_duration_seconds",
			Help:    "Time taken by Load calls on the source of truth (one SQL statement each with the SQL loader), by result (ok, error).",
			Buckets: loaderBuckets,
		}, []string{"result"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tiercache_loader_batch_keys",
			Help:    "Keys asked for per Load call.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
	}
	// Both loader results exist from the start, so that an error rate
	// reads 0 rather than nothing before the first failure.
	t.loader.WithLabelValues("ok")
	t.loader.WithLabelValues("error")
	return t
}

// Observer returns the hooks that feed t; pass them to tier.New with
// tier.WithObserver.
func (t *Timings) Observer() tier.Observer {
	return tier.Observer{TierCall: t.tierCall, LoadCall: t.loadCall}
}

func (t *Timings) tierCall(c tier.TierCall) {
	t.tier.WithLabelValues(c.Tier, string(c.Op), result(c.Op, c.Err)).Observe(c.Duration.Seconds())
}

func (t *Timings) loadCall(c tier.LoadCall) {
	r := "ok"
	if c.Err != nil {
		r = "error"
	}
	t.loader.WithLabelValues(r).Observe(c.Duration.Seconds())
	t.batch.Observe(float64(c.Keys))
}

// result names how a tier call ended, as the result label says it.
func result(op tier.Op, err error) string {
	switch {
	case err == nil && op == tier.OpGet:
		return "hit"
	case err == nil:
		return "ok"
	case errors.Is(err, tier.ErrMiss):
		return "miss"
	case errors.Is(err, tier.ErrNotStored):
		return "not_stored"
	case errors.Is(err, tier.ErrTooLarge):
		return "too_large"
	}
	return "error"
}

// Describe implements prometheus.Collector.
func (t *Timings) Describe(ch chan<- *prometheus.Desc) {
	t.tier.Describe(ch)
	t.loader.Describe(ch)
	t.batch.Describe(ch)
}

// Collect implements prometheus.Collector.
func (t *Timings) Collect(ch chan<- prometheus.Metric) {
	t.tier.Collect(ch)
	t.loader.Collect(ch)
	t.batch.Collect(ch)
}
