// Package tiercache builds a running cache chain, memory → memcached →
// bbolt → SQL, from a configuration file (see package config), with its
// metrics, stats port and logs wired in.
//
// The chain itself lives in package tier and the tiers in store/...; they
// know nothing of files, YAML or Prometheus. This package is the glue an
// application or the tiercache command uses when it would rather describe
// the chain in a file than in code:
//
//	chain, err := tiercache.Load("/etc/app/tiercache.yml")
//	if err != nil { ... }   // errors name the file and line
//	defer chain.Close()
//	v, err := chain.Cache.Get(ctx, "42")
package tiercache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql" // the "mysql" driver of source.driver
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tiercache/tiercache/config"
	"github.com/tiercache/tiercache/loader/sqlload"
	"github.com/tiercache/tiercache/metrics"
	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/store/memory"
	"github.com/tiercache/tiercache/tier"
)

// Chain is a cache chain built from a configuration, with the parts an
// operator's tools reach for. Close it when done. Its fields are set by
// Build and must not be changed.
type Chain struct {
	// Cache is the read-through chain.
	Cache *tier.Cache
	// Memory is the in-process tier on top, nil when the file has no
	// memory section or WithoutMemory was given.
	Memory *memory.Tier
	// Memcached is the memcached tier, nil when the file has no memcached
	// section. Durable is the bbolt tier, nil when the file has no durable
	// section or WithoutDurable was given. Both are the stores themselves,
	// as the chain holds them.
	Memcached *memcached.Tier
	Durable   *boltdb.Store
	// Loader reads the source through DB, which the Chain owns.
	Loader *sqlload.Loader
	DB     *sql.DB
	Config *config.File
	// Timings are the latency histograms, and Registry the Prometheus
	// registry holding them, the chain's counters and Go's.
	Timings  *metrics.Timings
	Registry *prometheus.Registry
	Logger   *slog.Logger

	statsAddr string
	server    *metrics.StatsServer
	stop      context.CancelFunc
	bg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Load reads the configuration at path and builds its chain.
func Load(path string, opts ...Option) (*Chain, error) {
	f, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return Build(f, opts...)
}

// Build builds the chain f describes: it opens the durable file, connects
// the memcached pool and the database handle (lazily: a server that is
// down shows up in the stats, not as an error here), and, when the file
// says stats.listen, starts the stats server. Errors about a setting name
// its line.
func Build(f *config.File, opts ...Option) (*Chain, error) {
	o := options{eventInterval: time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Chain{Config: f, Timings: metrics.NewTimings(), Logger: o.logger}
	if c.Logger == nil {
		c.Logger = f.Log.Logger(os.Stderr)
	}
	ok := false
	defer func() {
		if !ok {
			c.closeParts()
		}
	}()

	var tierOpts []tier.Option
	if f.Memory != nil && !o.withoutMemory {
		mem, err := buildMemory(f)
		if err != nil {
			return nil, err
		}
		c.Memory = mem
		tierOpts = append(tierOpts, tier.WithTier(mem, memoryChainTTL(f, o)))
	}
	if f.Memcached != nil {
		mc, err := buildMemcached(f, o.memcachedOpts)
		if err != nil {
			return nil, err
		}
		c.Memcached = mc
		tierOpts = append(tierOpts, tier.WithTier(mc, f.Memcached.TTL.D()))
	}
	if f.Durable != nil && !o.withoutDurable {
		disk, err := buildDurable(f, o)
		if err != nil {
			return nil, err
		}
		c.Durable = disk
		if aside := disk.Quarantined(); aside != "" {
			c.Logger.Warn("durable file was corrupt and has been moved aside; starting cold",
				"path", disk.Path(), "moved_to", aside)
		}
		tierOpts = append(tierOpts, tier.WithTier(disk, f.Durable.TTL.D()))
	}
	if err := c.buildSource(f); err != nil {
		return nil, err
	}
	if d := f.NegativeTTL.D(); d > 0 {
		tierOpts = append(tierOpts, tier.WithNegativeTTL(d))
	}
	if d := f.StaleIfError.D(); d > 0 {
		tierOpts = append(tierOpts, tier.WithStaleIfError(d))
	}
	if f.Source.Batch > 0 {
		tierOpts = append(tierOpts, tier.WithLoadBatch(f.Source.Batch))
	}
	if f.Warmup.Auto && c.Durable != nil {
		var wopts []tier.WarmupOption
		if f.Warmup.Rate > 0 {
			wopts = append(wopts, tier.WithWarmupRate(f.Warmup.Rate))
		}
		if f.Warmup.Burst > 0 {
			wopts = append(wopts, tier.WithWarmupBurst(f.Warmup.Burst))
		}
		tierOpts = append(tierOpts, tier.WithAutoWarmup(wopts...))
	}
	tierOpts = append(tierOpts, leaseOptions(f)...)
	tierOpts = append(tierOpts, tier.WithObserver(c.Timings.Observer()))
	cache, err := tier.New(c.Loader, append(tierOpts, o.tierOpts...)...)
	if err != nil {
		if strings.Contains(err.Error(), "WithAutoWarmup") {
			return nil, f.Wrap([]string{"warmup", "auto"}, err)
		}
		return nil, fmt.Errorf("tiercache: %s: %w", f.Path(), err)
	}
	c.Cache = cache

	c.Registry = prometheus.NewRegistry()
	c.Registry.MustRegister(metrics.NewCollector(cache), c.Timings,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if f.Stats.Listen != "" && !o.withoutStats {
		if err := c.serveStats(f); err != nil {
			return nil, err
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	c.stop = stop
	if f.Stats.Graphite != "" && !o.withoutStats {
		c.bg.Add(1)
		go func() {
			defer c.bg.Done()
			err := metrics.PushGraphite(ctx, c.Registry, f.Stats.Graphite, f.Stats.GraphitePrefix, f.Stats.GraphiteInterval.D(), c.Logger)
			if err != nil {
				c.Logger.Error("graphite push not started", "addr", f.Stats.Graphite, "err", err)
			}
		}()
	}
	w := newWatcher(c.Cache, c.Logger)
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		w.run(ctx, o.eventInterval)
	}()
	ok = true
	return c, nil
}

func buildMemory(f *config.File) (*memory.Tier, error) {
	m := f.Memory
	opts := []memory.Option{memory.WithMaxBytes(int64(m.MaxBytes)), memory.WithTTL(m.TTL.D()),
		memory.WithMaxEntries(m.MaxEntries), memory.WithGrace(f.StaleWhileRevalidate.D())}
	if m.MaxItemSize > 0 {
		opts = append(opts, memory.WithMaxItemSize(int(m.MaxItemSize)))
	}
	mem, err := memory.New(opts...)
	if err != nil {
		return nil, f.Wrap([]string{"memory"}, err)
	}
	return mem, nil
}

// memoryChainTTL is the TTL the chain gives the memory tier: the TTL of the
// tier below it, so that a value in memory carries the expiry of the copy
// below (early refresh reads it); memory.ttl, which the tier applies
// itself, bounds how long this process keeps it.
func memoryChainTTL(f *config.File, o options) time.Duration {
	switch {
	case f.Memcached != nil:
		return f.Memcached.TTL.D()
	case f.Durable != nil && !o.withoutDurable:
		return f.Durable.TTL.D()
	}
	return f.Memory.TTL.D()
}

func buildMemcached(f *config.File, extra []memcached.Option) (*memcached.Tier, error) {
	m := f.Memcached
	var opts []memcached.Option
	if m.Hash != "" {
		opts = append(opts, memcached.WithHash(m.Hash))
	}
	if m.Distribution != "" {
		opts = append(opts, memcached.WithDistribution(m.Distribution))
	}
	if m.Timeout > 0 {
		opts = append(opts, memcached.WithTimeout(m.Timeout.D()))
	}
	if m.KeyPrefix != "" {
		opts = append(opts, memcached.WithKeyPrefix(m.KeyPrefix))
	}
	if m.MaxItemSize > 0 {
		opts = append(opts, memcached.WithMaxItemSize(int(m.MaxItemSize)))
	}
	if m.ServerConnections > 0 {
		opts = append(opts, memcached.WithServerConnections(m.ServerConnections))
	}
	if m.HashTag != "" {
		opts = append(opts, memcached.WithHashTag(string(m.HashTag)))
	}
	if m.FailureLimit > 0 {
		opts = append(opts, memcached.WithFailureLimit(m.FailureLimit))
	}
	if m.RetryTimeout > 0 {
		opts = append(opts, memcached.WithRetryTimeout(m.RetryTimeout.D()))
	}
	if m.AutoEjectHosts {
		opts = append(opts, memcached.WithAutoEject(true))
	}
	if m.EjectedTTLCap > 0 {
		opts = append(opts, memcached.WithEjectedTTLCap(m.EjectedTTLCap.D()))
	}
	if d := m.Discovery; d != nil {
		interval := d.Interval.D()
		if interval <= 0 {
			interval = config.DefaultDiscoveryInterval
		}
		opts = append(opts, memcached.WithDiscovery(d.Endpoint, interval), memcached.WithDiscoveryRetry(d.Retry))
	}
	if m.RestartDetection > 0 {
		opts = append(opts, memcached.WithRestartDetection(m.RestartDetection.D()))
	}
	if p := f.Leases.Protocol; p != "" {
		opts = append(opts, memcached.WithLeaseProtocol(memcached.LeaseProtocol(p)))
	}
	mc, err := memcached.New(m.ServerSpecs(), append(opts, extra...)...)
	if err != nil {
		return nil, f.Wrap(memcachedSetting(err), err)
	}
	return mc, nil
}

// memcachedSetting guesses which setting an error of memcached.New is
// about, to point at its line.
func memcachedSetting(err error) []string {
	msg := err.Error()
	if strings.Contains(msg, "lease protocol") {
		return []string{"leases", "protocol"}
	}
	for _, s := range []struct{ words, key string }{
		{"distribution", "distribution"}, {"hash tag", "hash_tag"}, {"hash", "hash"},
		{"retry timeout", "retry_timeout"}, {"timeout", "timeout"}, {"prefix", "key_prefix"},
		{"item size", "max_item_size"}, {"server connections", "server_connections"}, {"failure limit", "failure_limit"},
		{"ejected", "ejected_ttl_cap"}, {"discovery", "discovery"}, {"restart", "restart_detection"},
		{"auto-eject", "auto_eject_hosts"}, {"AutoEject", "auto_eject_hosts"},
	} {
		if strings.Contains(msg, s.words) {
			return []string{"memcached", s.key}
		}
	}
	return []string{"memcached", "servers"}
}

func buildDurable(f *config.File, o options) (*boltdb.Store, error) {
	d := f.Durable
	path := d.Path
	if o.durablePath != "" {
		path = o.durablePath
	}
	opts := []boltdb.Option{
		boltdb.WithMaxEntries(d.MaxEntries),
		boltdb.WithMaxBytes(int64(d.MaxBytes)),
		boltdb.WithQuarantineCorrupt(d.Quarantine),
		boltdb.WithNoSync(d.NoSync),
	}
	if f.Has("durable", "gc_interval") {
		opts = append(opts, boltdb.WithGCInterval(d.GCInterval.D()))
	}
	switch {
	case f.Has("durable", "gc_grace"):
		opts = append(opts, boltdb.WithGCGrace(d.GCGrace.D()))
	case f.StaleIfError > 0:
		// A stale copy can only be served while the GC has not deleted it.
		opts = append(opts, boltdb.WithGCGrace(f.StaleIfError.D()))
	}
	if f.Has("durable", "lock_timeout") {
		opts = append(opts, boltdb.WithLockTimeout(d.LockTimeout.D()))
	}
	if d.QueueSize > 0 {
		opts = append(opts, boltdb.WithQueueSize(d.QueueSize))
	}
	if d.BatchSize > 0 {
		opts = append(opts, boltdb.WithBatchSize(d.BatchSize))
	}
	if f.Has("durable", "flush_interval") {
		opts = append(opts, boltdb.WithFlushInterval(d.FlushInterval.D()))
	}
	disk, err := boltdb.Open(path, append(opts, o.durableOpts...)...)
	if err != nil {
		return nil, f.Wrap([]string{"durable", "path"}, err)
	}
	return disk, nil
}

func (c *Chain) buildSource(f *config.File) error {
	dsn, err := f.SourceDSN()
	if err != nil {
		return err
	}
	db, err := sql.Open(f.Source.Driver, dsn)
	if err != nil {
		return f.Wrap([]string{"source", "dsn"}, err)
	}
	c.DB = db
	var opts []sqlload.Option
	if f.Source.Batch > 0 {
		opts = append(opts, sqlload.WithMaxBatch(f.Source.Batch))
	}
	if p := f.Source.PreparedStatements; p != nil {
		opts = append(opts, sqlload.WithPreparedStatements(*p))
	}
	l, err := sqlload.New(db, f.Source.Query, opts...)
	if err != nil {
		return f.Wrap([]string{"source", "query"}, err)
	}
	c.Loader = l
	return nil
}

func (c *Chain) serveStats(f *config.File) error {
	ln, err := net.Listen("tcp", f.Stats.Listen)
	if err != nil {
		return f.Wrap([]string{"stats", "listen"}, err)
	}
	c.statsAddr = ln.Addr().String()
	c.server = metrics.NewStatsServer(c.Cache, c.Registry)
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		if err := c.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.Logger.Error("stats server stopped", "addr", c.statsAddr, "err", err)
		}
	}()
	c.Logger.Info("serving stats", "addr", c.statsAddr, "http", "/ /stats /metrics", "raw", "the stats JSON")
	return nil
}

// StatsAddr is the address the stats server listens on, "" when there is
// none.
func (c *Chain) StatsAddr() string { return c.statsAddr }

// Handler serves the chain's stats: /metrics for Prometheus, and the
// twemproxy-shaped JSON at /stats and /. Mount it on an application's own
// server when the file has no stats.listen.
func (c *Chain) Handler() http.Handler { return metrics.Handler(c.Cache, c.Registry) }

// Close stops the stats server and the event log, closes the cache (which
// flushes the durable tier's queue and closes the tiers) and the database
// handle.
func (c *Chain) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.closeParts() })
	return c.closeErr
}

func (c *Chain) closeParts() error {
	var errs []error
	if c.stop != nil {
		c.stop()
	}
	if c.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, c.server.Shutdown(ctx))
		cancel()
	}
	c.bg.Wait()
	if c.Cache != nil {
		errs = append(errs, c.Cache.Close())
	} else {
		// The cache never took ownership of the parts built so far.
		if c.Memory != nil {
			errs = append(errs, c.Memory.Close())
		}
		if c.Memcached != nil {
			errs = append(errs, c.Memcached.Close())
		}
		if c.Durable != nil {
			errs = append(errs, c.Durable.Close())
		}
		if c.Loader != nil {
			errs = append(errs, c.Loader.Close())
		}
	}
	if c.DB != nil {
		errs = append(errs, c.DB.Close())
	}
	return errors.Join(errs...)
}

// leaseOptions maps the file's leases, early refresh, stale-while-revalidate
// and jitter settings onto the chain's options.
func leaseOptions(f *config.File) []tier.Option {
	var opts []tier.Option
	if l := f.Leases; l.Enabled {
		var lopts []tier.LeaseOption
		if d := l.TTL.D(); d > 0 {
			lopts = append(lopts, tier.WithLeaseTTL(d))
		}
		if d := l.Wait.D(); d > 0 {
			lopts = append(lopts, tier.WithLeaseWait(d))
		}
		if d := l.ClockSkew.D(); d > 0 {
			lopts = append(lopts, tier.WithClockSkew(d))
		}
		opts = append(opts, tier.WithLeases(lopts...))
	}
	if f.EarlyRefresh > 0 {
		opts = append(opts, tier.WithEarlyRefresh(f.EarlyRefresh))
	}
	if d := f.StaleWhileRevalidate.D(); d > 0 {
		opts = append(opts, tier.WithStaleWhileRevalidate(d))
	}
	if f.TTLJitter > 0 {
		opts = append(opts, tier.WithTTLJitter(f.TTLJitter))
	}
	return opts
}
