package metrics

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tiercache/tiercache/tier"
)

// Timings holds the latency histograms that InstrumentTier and
// InstrumentLoader feed. It is a prometheus.Collector: register it once.
// It is safe for concurrent use, and one Timings serves every tier of a
// chain (they are told apart by the tier label).
type Timings struct {
	tier   *prometheus.HistogramVec
	loader *prometheus.HistogramVec
	batch  prometheus.Histogram
}

// latencyBuckets span a bbolt read of a microsecond to a memcached timeout
// and a slow SQL statement.
var latencyBuckets = prometheus.ExponentialBucketsRange(5e-6, 2.5, 18)

// NewTimings returns empty histograms.
func NewTimings() *Timings {
	return &Timings{
		tier: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tiercache_tier_duration_seconds",
			Help:    "Time taken by operations on a tier, by operation (get, get_multi, set, add, delete) and result (hit, miss, ok, not_stored, too_large, error).",
			Buckets: latencyBuckets,
		}, []string{"tier", "op", "result"}),
		loader: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tiercache_loader_duration_seconds",
			Help:    "Time taken by Load calls on the source of truth, by result (ok, error).",
			Buckets: latencyBuckets,
		}, []string{"result"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tiercache_loader_batch_keys",
			Help:    "Keys asked for per Load call.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
	}
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

// opTimer observes one operation's duration under the result its error
// means. The observers are looked up once, when a tier is wrapped, so the
// hot path does not hash label values; results an operation cannot have
// are left nil, so that they do not show up as empty series.
type opTimer struct {
	ok, miss, notStored, tooLarge, failed prometheus.Observer
}

// opTimer returns the timer of one operation. okResult names success
// ("hit" for a get, "ok" otherwise); extra lists the other results the
// operation can have besides "error": "miss", "not_stored", "too_large".
func (t *Timings) opTimer(tierName, op, okResult string, extra ...string) opTimer {
	o := func(result string) prometheus.Observer {
		return t.tier.WithLabelValues(tierName, op, result)
	}
	ot := opTimer{ok: o(okResult), failed: o("error")}
	for _, r := range extra {
		switch r {
		case "miss":
			ot.miss = o(r)
		case "not_stored":
			ot.notStored = o(r)
		case "too_large":
			ot.tooLarge = o(r)
		}
	}
	return ot
}

func (o opTimer) observe(start time.Time, err error) {
	d := time.Since(start).Seconds()
	obs := o.failed
	switch {
	case err == nil:
		obs = o.ok
	case o.miss != nil && errors.Is(err, tier.ErrMiss):
		obs = o.miss
	case o.notStored != nil && errors.Is(err, tier.ErrNotStored):
		obs = o.notStored
	case o.tooLarge != nil && errors.Is(err, tier.ErrTooLarge):
		obs = o.tooLarge
	}
	obs.Observe(d)
}
