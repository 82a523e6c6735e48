package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/graphite"
)

// DefaultGraphiteInterval is how often PushGraphite pushes when no
// interval is given: carbon's usual finest retention.
const DefaultGraphiteInterval = 10 * time.Second

// DefaultGraphitePrefix is the first part of every metric path.
const DefaultGraphitePrefix = "tiercache"

// PushGraphite pushes what reg gathers to the carbon plaintext listener at
// addr (host:port) every interval, with client_golang's Graphite bridge,
// until ctx is done. A failed push is logged and the next one tried on
// time. Metric paths are prefix.NAME.LABEL.VALUE..., as the bridge writes
// them.
func PushGraphite(ctx context.Context, reg prometheus.Gatherer, addr, prefix string, interval time.Duration, log *slog.Logger) error {
	if interval <= 0 {
		interval = DefaultGraphiteInterval
	}
	if prefix == "" {
		prefix = DefaultGraphitePrefix
	}
	b, err := graphite.NewBridge(&graphite.Config{
		URL:           addr,
		Gatherer:      reg,
		Prefix:        prefix,
		Interval:      interval,
		Timeout:       min(interval, 15*time.Second),
		ErrorHandling: graphite.ContinueOnError,
		Logger:        graphiteLogger{log},
	})
	if err != nil {
		return err
	}
	b.Run(ctx)
	return nil
}

// graphiteLogger hands the bridge's failures to the chain's log.
type graphiteLogger struct{ log *slog.Logger }

func (l graphiteLogger) Println(v ...any) {
	if l.log != nil {
		l.log.Warn("graphite push failed", "err", slog.AnyValue(v))
	}
}
