package metrics_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tiercache/tiercache/metrics"
	"github.com/tiercache/tiercache/tier"
)

// Example times a chain's calls, registers the chain's metrics and reads
// them back the way Prometheus does.
func Example() {
	timings := metrics.NewTimings()
	src := tier.LoaderFunc(func(_ context.Context, keys []string) (map[string][]byte, error) {
		return map[string][]byte{keys[0]: []byte("v")}, nil
	})
	cache, err := tier.New(src, tier.WithObserver(timings.Observer()))
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	_, _ = cache.Get(context.Background(), "42")

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(cache), timings)
	rec := httptest.NewRecorder()
	metrics.Handler(cache, reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "tiercache_loader_statements_total") || strings.HasPrefix(line, "tiercache_loader_duration_seconds_count") {
			fmt.Println(line)
		}
	}
	// Output:
	// tiercache_loader_duration_seconds_count{result="error"} 0
	// tiercache_loader_duration_seconds_count{result="ok"} 1
	// tiercache_loader_statements_total 1
}
