package tiercache

import (
	"log/slog"
	"time"

	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
)

// Option changes how Build builds a chain from its file.
type Option func(*options)

type options struct {
	logger         *slog.Logger
	withoutStats   bool
	withoutDurable bool
	withoutMemory  bool
	durablePath    string
	tierOpts       []tier.Option
	memcachedOpts  []memcached.Option
	durableOpts    []boltdb.Option
	eventInterval  time.Duration
}

// WithLogger sends the chain's events to l instead of the logger the
// file's log section describes (on standard error).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithoutStatsServer leaves the file's stats.listen alone: tools that load
// a service's file must not take its stats port.
func WithoutStatsServer() Option { return func(o *options) { o.withoutStats = true } }

// WithoutDurable builds the chain without its durable tier, for tools that
// run beside a service holding the file.
func WithoutDurable() Option { return func(o *options) { o.withoutDurable = true } }

// WithoutMemory builds the chain without its memory tier, for tools that
// measure the tiers below it.
func WithoutMemory() Option { return func(o *options) { o.withoutMemory = true } }

// WithDurablePath opens the durable tier at path instead of the file's
// durable.path (the benchmark uses a scratch file).
func WithDurablePath(path string) Option { return func(o *options) { o.durablePath = path } }

// WithTierOptions adds options to tier.New, after those the file implies.
func WithTierOptions(opts ...tier.Option) Option {
	return func(o *options) { o.tierOpts = append(o.tierOpts, opts...) }
}

// WithMemcachedOptions adds options to memcached.New.
func WithMemcachedOptions(opts ...memcached.Option) Option {
	return func(o *options) { o.memcachedOpts = append(o.memcachedOpts, opts...) }
}

// WithDurableOptions adds options to boltdb.Open.
func WithDurableOptions(opts ...boltdb.Option) Option {
	return func(o *options) { o.durableOpts = append(o.durableOpts, opts...) }
}

// WithEventInterval sets how often the event log looks at the chain's
// stats for changes worth a line (default one second).
func WithEventInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.eventInterval = d
		}
	}
}
