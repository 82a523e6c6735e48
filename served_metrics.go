package tiercache

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tiercache/tiercache/serve"
)

// serveCollector exports a server's own counters to the chain's registry,
// so that /metrics on the stats port shows them beside the chain's:
// tiercache_serve_cmd_get_total, tiercache_serve_curr_connections, ...
type serveCollector struct {
	srv   *serve.Server
	descs map[string]*prometheus.Desc
}

func newServeCollector(srv *serve.Server) *serveCollector {
	c := &serveCollector{srv: srv, descs: map[string]*prometheus.Desc{}}
	for name := range srv.Counters() {
		metric := "tiercache_serve_" + name + "_total"
		if name == "curr_connections" {
			metric = "tiercache_serve_curr_connections"
		}
		c.descs[name] = prometheus.NewDesc(metric, "tiercache serve's "+name+", as the stats command names it.", nil, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *serveCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *serveCollector) Collect(ch chan<- prometheus.Metric) {
	for name, v := range c.srv.Counters() {
		kind := prometheus.CounterValue
		if name == "curr_connections" {
			kind = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[name], kind, float64(v))
	}
}
