package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/store/memory"
)

// Defaults for what a file leaves out.
const (
	DefaultMemcachedTTL = 10 * time.Minute
	DefaultDurableTTL   = 24 * time.Hour
	DefaultDriver       = "mysql"
	// DefaultMemoryTTL is how long the memory tier keeps an entry: short,
	// since a Delete in another process cannot reach it.
	DefaultMemoryTTL      = memory.DefaultTTL
	DefaultMemoryMaxBytes = memory.DefaultMaxBytes
)

// File is a tiercache configuration. Sections left out of the file are nil
// (a chain may have no memcached, or no durable tier); fields left out have
// the defaults documented on them. Line reports where a setting was
// written, for errors found later (a server that does not resolve).
type File struct {
	// Memory is the in-process tier, on top of the others.
	Memory *Memory `yaml:"memory"`
	// Memcached is the top tier, a pool of memcached servers (the second,
	// below memory, when there is a memory section).
	Memcached *Memcached `yaml:"memcached"`
	// Durable is the bbolt file below memcached.
	Durable *Durable `yaml:"durable"`
	// Source is the SQL source of truth. Required.
	Source Source `yaml:"source"`
	// NegativeTTL is how long every tier remembers that a key has no row
	// (0, the default, turns negative caching off).
	NegativeTTL Duration `yaml:"negative_ttl"`
	// StaleIfError lets a Get answer with a copy that expired no longer
	// ago than this when the source fails (0, the default: never).
	StaleIfError Duration `yaml:"stale_if_error"`
	// Warmup sets the automatic refill of memcached after a restart.
	Warmup Warmup `yaml:"warmup"`
	// Leases coordinate loads and invalidations across processes sharing
	// the memcached pool (docs/consistency.md).
	Leases Leases `yaml:"leases"`
	// EarlyRefresh is XFetch's beta: hot keys are reloaded in the
	// background shortly before they expire (0, the default: off; 1 is
	// the usual choice).
	EarlyRefresh float64 `yaml:"early_refresh"`
	// StaleWhileRevalidate answers with a value expired no longer ago
	// than this and refreshes it behind the caller (needs leases).
	StaleWhileRevalidate Duration `yaml:"stale_while_revalidate"`
	// TTLJitter spreads the expiries of keys loaded together by up to
	// this fraction of their TTL either way (0.1: ±10%).
	TTLJitter float64 `yaml:"ttl_jitter"`
	// Stats is where a service serves its stats and metrics.
	Stats Stats `yaml:"stats"`
	// Log sets the structured log.
	Log Log `yaml:"log"`
	// Serve configures tiercache serve.
	Serve Serve `yaml:"serve"`

	path string
	root *yaml.Node
}

// Memcached is the memcached pool. The names follow nutcracker.yml.
type Memcached struct {
	// Servers are "host:port:weight [name]". Either Servers or Discovery.
	Servers []Server `yaml:"servers"`
	// Discovery finds the servers from an endpoint instead.
	Discovery *Discovery `yaml:"discovery"`
	// Hash and Distribution name twemproxy's key placement (fnv1a_64 and
	// ketama are twemproxy's defaults). Both empty: gomemcache's own
	// placement, crc32 modulo the number of servers.
	Hash         string  `yaml:"hash"`
	Distribution string  `yaml:"distribution"`
	HashTag      HashTag `yaml:"hash_tag"`
	// Timeout bounds each network step (bare number: milliseconds).
	Timeout Millis `yaml:"timeout"`
	// FailureLimit consecutive failures eject a server for RetryTimeout
	// when AutoEjectHosts is on.
	FailureLimit   int    `yaml:"failure_limit"`
	RetryTimeout   Millis `yaml:"retry_timeout"`
	AutoEjectHosts bool   `yaml:"auto_eject_hosts"`
	// EjectedTTLCap caps the TTL of values written to a substitute node
	// while auto_eject_hosts has a node out.
	EjectedTTLCap Duration `yaml:"ejected_ttl_cap"`
	// RestartDetection checks every interval whether a node restarted or
	// was flushed (needed by warmup.auto). 0: off.
	RestartDetection Duration `yaml:"restart_detection"`
	KeyPrefix        string   `yaml:"key_prefix"`
	MaxItemSize      Size     `yaml:"max_item_size"`
	// ServerConnections is how many connections to open to each server
	// at most, as twemproxy's server_connections (default 2).
	ServerConnections int `yaml:"server_connections"`
	// TTL is how long a freshly loaded value lives in memcached (default
	// 10m; 0 means no expiry).
	TTL Duration `yaml:"ttl"`
}

// Memory is the in-process tier (store/memory). It holds values for ttl
// at most, and never longer than the copy in the tier below it.
type Memory struct {
	// MaxBytes bounds keys, values and per-entry bookkeeping (default
	// 64MiB); MaxEntries, when set, bounds the number of entries too.
	MaxBytes   Size `yaml:"max_bytes"`
	MaxEntries int  `yaml:"max_entries"`
	// TTL is the longest this process serves a value from memory without
	// asking the tier below, and so how stale it may serve a value another
	// process changed (default 1s).
	TTL Duration `yaml:"ttl"`
	// MaxItemSize is the largest value kept in memory (default 1MiB).
	MaxItemSize Size `yaml:"max_item_size"`
}

// Discovery is an endpoint that lists the memcached servers (an AWS
// ElastiCache configuration endpoint, for instance), polled every Interval.
type Discovery struct {
	Endpoint string `yaml:"endpoint"`
	// Interval defaults to a minute.
	Interval Duration `yaml:"interval"`
	// Retry starts the pool even when the first query fails, and keeps
	// asking.
	Retry bool `yaml:"retry"`
}

// DefaultDiscoveryInterval is how often the endpoint is asked when the
// file does not say.
const DefaultDiscoveryInterval = time.Minute

// Warmup is how the chain refills memcached from the durable tier.
type Warmup struct {
	// Auto refills a memcached node from the durable tier as soon as it
	// is seen to restart or be flushed (needs memcached.restart_detection).
	Auto bool `yaml:"auto"`
	// Rate limits a warmup to this many entries per second (0: no limit).
	Rate int `yaml:"rate"`
	// Burst sends the first this many entries of a rate-limited warmup at
	// full speed: about the working set, which the durable tier lists
	// first (tier.WithWarmupBurst).
	Burst int `yaml:"burst"`
}

// Leases turns on memcached leases (tier.WithLeases); zero durations keep
// the library's defaults.
type Leases struct {
	Enabled bool `yaml:"enabled"`
	// TTL is how long a lease holds before another caller may take over.
	TTL Duration `yaml:"ttl"`
	// Wait is how long a caller waits for another process's load before
	// loading the key itself.
	Wait Duration `yaml:"wait"`
	// ClockSkew is the allowance between process clocks when a durable
	// copy is compared with an invalidation marker.
	ClockSkew Duration `yaml:"clock_skew"`
	// Protocol is the memcached commands leases are built on: meta
	// (memcached 1.6 or later, spoken to directly), classic (gets, add and
	// cas, for servers behind twemproxy and memcached before 1.6), or
	// auto, the default, which asks each server once.
	Protocol string `yaml:"protocol"`
}

// Durable is the bbolt file.
type Durable struct {
	Path string `yaml:"path"`
	// TTL is how long a freshly loaded value lives in the file (default
	// 24h; 0 means no expiry).
	TTL           Duration `yaml:"ttl"`
	GCInterval    Duration `yaml:"gc_interval"`
	GCGrace       Duration `yaml:"gc_grace"`
	MaxEntries    int      `yaml:"max_entries"`
	MaxBytes      Size     `yaml:"max_bytes"`
	LockTimeout   Duration `yaml:"lock_timeout"`
	Quarantine    bool     `yaml:"quarantine_corrupt"`
	QueueSize     int      `yaml:"queue_size"`
	BatchSize     int      `yaml:"batch_size"`
	FlushInterval Duration `yaml:"flush_interval"`
	NoSync        bool     `yaml:"no_sync"`
}

// Source is the SQL source of truth.
type Source struct {
	// Driver is the database/sql driver; only "mysql" (MySQL and MariaDB)
	// is built in.
	Driver string `yaml:"driver"`
	// DSN, or DSNEnv naming the environment variable that holds it (to
	// keep the password out of the file). Exactly one.
	DSN    string `yaml:"dsn"`
	DSNEnv string `yaml:"dsn_env"`
	// Query has one "IN (?)" list and returns (key, value).
	Query string `yaml:"query"`
	// Batch is the most keys in one statement (default 500).
	Batch int `yaml:"batch"`
	// PreparedStatements defaults to true.
	PreparedStatements *bool `yaml:"prepared_statements"`
}

// Stats is the stats address of a service.
type Stats struct {
	// Listen is host:port for the HTTP server that answers /stats (the
	// twemproxy-shaped JSON) and /metrics (Prometheus). Empty: none.
	Listen string `yaml:"listen"`
	// Graphite is host:port of a carbon plaintext listener the service
	// pushes its metrics to every GraphiteInterval (default 10s), under
	// GraphitePrefix (default "tiercache"). Empty: no push.
	Graphite         string   `yaml:"graphite"`
	GraphiteInterval Duration `yaml:"graphite_interval"`
	GraphitePrefix   string   `yaml:"graphite_prefix"`
}

// Log configures the structured log (log/slog).
type Log struct {
	// Level is debug, info, warn (the default: quiet) or error.
	Level string `yaml:"level"`
	// Format is text (the default) or json.
	Format string `yaml:"format"`
}

func init() {
	for typ, section := range map[string]string{
		"config.File": "the top level", "config.Memcached": "memcached",
		"config.Discovery": "memcached.discovery", "config.Durable": "durable",
		"config.Source": "source", "config.Stats": "stats", "config.Log": "log", "config.Warmup": "warmup",
		"config.Leases": "leases", "config.Memory": "memory",
	} {
		registerSection(typ, section)
	}
}

// Load reads and checks the configuration at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// Parse reads and checks a configuration; name is the file it came from,
// used in error messages. Every problem found is reported in one *Error.
func Parse(data []byte, name string) (*File, error) {
	f := &File{
		Memory:    &Memory{TTL: Duration(DefaultMemoryTTL), MaxBytes: DefaultMemoryMaxBytes},
		Memcached: &Memcached{TTL: Duration(DefaultMemcachedTTL)},
		Durable:   &Durable{TTL: Duration(DefaultDurableTTL)},
		Source:    Source{Driver: DefaultDriver},
		path:      name,
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlProblems(err, data).err(name)
	}
	f.root = &root
	top := f.node()
	if top == nil {
		return nil, problems{{Msg: "empty configuration: a source section at least is required"}}.err(name)
	}
	if top.Kind != yaml.MappingNode {
		return nil, problems{{Line: top.Line, Msg: "want a mapping of sections (memcached, durable, source...)"}}.err(name)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlProblems(err, data).err(name)
	}
	if f.node("memory") == nil {
		f.Memory = nil
	}
	if f.node("memcached") == nil {
		f.Memcached = nil
	}
	if f.node("durable") == nil {
		f.Durable = nil
	}
	return f, f.check().err(name)
}

// Path is the file the configuration was read from.
func (f *File) Path() string { return f.path }

// Line returns the line of the setting at path ("durable", "path"), or of
// the nearest enclosing section written in the file, or 0.
func (f *File) Line(path ...string) int {
	for i := len(path); i >= 0; i-- {
		if n := f.keyNode(path[:i]...); n != nil {
			return n.Line
		}
	}
	return 0
}

// Errorf returns an *Error about the setting at path, for mistakes found
// after parsing, when the chain is built.
func (f *File) Errorf(path []string, format string, args ...any) error {
	return &Error{File: f.path, Problems: []Problem{{
		Line: f.Line(path...),
		Msg:  strings.Join(path, ".") + ": " + fmt.Sprintf(format, args...),
	}}}
}

// Wrap is Errorf for an error err that callers may want to inspect with
// errors.Is: the message names the setting's line, and the *Error unwraps
// to err.
func (f *File) Wrap(path []string, err error) error {
	e := f.Errorf(path, "%v", err).(*Error)
	e.Err = err
	return e
}

// node returns the value node at path, nil when it is not in the file.
func (f *File) node(path ...string) *yaml.Node {
	if f.root == nil || len(f.root.Content) == 0 {
		return nil
	}
	n := f.root.Content[0]
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	for _, key := range path {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// keyNode returns the key node of the setting at path (its line is where
// the setting starts), or the document for an empty path.
func (f *File) keyNode(path ...string) *yaml.Node {
	if len(path) == 0 {
		return f.node()
	}
	parent := f.node(path[:len(path)-1]...)
	if parent == nil || parent.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(parent.Content); i += 2 {
		if parent.Content[i].Value == path[len(path)-1] {
			return parent.Content[i]
		}
	}
	return nil
}

// check finds the mistakes the types alone cannot: missing and
// contradictory settings.
func (f *File) check() problems {
	var ps problems
	at := f.Line
	if m := f.Memory; m != nil {
		if m.TTL <= 0 {
			ps.add(at("memory", "ttl"), "memory: ttl %v: want a positive duration (it bounds how stale another process's change may be served)", m.TTL.D())
		}
		if m.MaxBytes < memory.EntryOverhead {
			ps.add(at("memory", "max_bytes"), "memory: max_bytes %d: want at least %d", int64(m.MaxBytes), memory.EntryOverhead)
		}
		if m.MaxEntries < 0 {
			ps.add(at("memory", "max_entries"), "memory: max_entries %d: must not be negative", m.MaxEntries)
		}
		if m.MaxItemSize < 0 {
			ps.add(at("memory", "max_item_size"), "memory: max_item_size %d: must not be negative", int64(m.MaxItemSize))
		}
	}
	if mc := f.Memcached; mc != nil {
		switch {
		case len(mc.Servers) == 0 && mc.Discovery == nil:
			ps.add(at("memcached"), "memcached: servers or discovery is required")
		case len(mc.Servers) > 0 && mc.Discovery != nil:
			ps.add(at("memcached", "discovery"), "memcached: servers and discovery exclude each other")
		}
		seen := map[string]int{}
		for _, s := range mc.Servers {
			for _, id := range []string{"address " + s.Addr, "name " + s.PlacementName()} {
				if first, dup := seen[id]; dup {
					ps.add(s.Line, "memcached: server %s listed twice (first at line %d)", id, first)
					break
				}
				seen[id] = s.Line
			}
		}
		if d := mc.Discovery; d != nil {
			if _, _, err := net.SplitHostPort(d.Endpoint); err != nil {
				ps.add(at("memcached", "discovery", "endpoint"), "memcached.discovery: endpoint %q: want host:port", d.Endpoint)
			}
		}
		if mc.Hash != "" && !slices.Contains(knownHashes, mc.Hash) {
			ps.add(at("memcached", "hash"), "memcached: unknown hash %q, want one of %s", mc.Hash, strings.Join(knownHashes, ", "))
		}
		if mc.Distribution != "" && !slices.Contains(knownDistributions, mc.Distribution) {
			ps.add(at("memcached", "distribution"), "memcached: unknown distribution %q, want one of %s", mc.Distribution, strings.Join(knownDistributions, ", "))
		}
		for _, c := range []struct {
			name string
			v    int
		}{{"failure_limit", mc.FailureLimit}, {"server_connections", mc.ServerConnections}} {
			if c.v < 0 {
				ps.add(at("memcached", c.name), "memcached: %s %d: must not be negative", c.name, c.v)
			}
		}
	}
	if d := f.Durable; d != nil {
		if d.Path == "" {
			ps.add(at("durable"), "durable: path is required")
		}
		for _, c := range []struct {
			name string
			v    int
		}{{"max_entries", d.MaxEntries}, {"queue_size", d.QueueSize}, {"batch_size", d.BatchSize}} {
			if c.v < 0 {
				ps.add(at("durable", c.name), "durable: %s %d: must not be negative", c.name, c.v)
			}
		}
	}
	s := f.Source
	switch {
	case f.node("source") == nil:
		ps.add(0, "source: the SQL source is required (dsn or dsn_env, and query)")
	default:
		if s.Driver != "mysql" {
			ps.add(at("source", "driver"), "source: driver %q: only mysql (MySQL, MariaDB) is built in", s.Driver)
		}
		switch {
		case s.DSN == "" && s.DSNEnv == "":
			ps.add(at("source"), "source: dsn or dsn_env is required")
		case s.DSN != "" && s.DSNEnv != "":
			ps.add(at("source", "dsn_env"), "source: dsn and dsn_env exclude each other")
		}
		if strings.TrimSpace(s.Query) == "" {
			ps.add(at("source"), "source: query is required, for example SELECT id, body FROM articles WHERE id IN (?)")
		}
		if s.Batch < 0 {
			ps.add(at("source", "batch"), "source: batch %d: must not be negative", s.Batch)
		}
	}
	if w := f.Warmup; w.Rate < 0 {
		ps.add(at("warmup", "rate"), "warmup: rate %d: must not be negative", w.Rate)
	}
	if w := f.Warmup; w.Burst < 0 {
		ps.add(at("warmup", "burst"), "warmup: burst %d: must not be negative", w.Burst)
	}
	if f.Warmup.Auto {
		switch {
		case f.Memcached == nil || f.Durable == nil:
			ps.add(at("warmup", "auto"), "warmup: auto needs a memcached and a durable section")
		case f.Memcached.RestartDetection <= 0:
			ps.add(at("warmup", "auto"), "warmup: auto needs memcached.restart_detection (for example 2s) to notice restarts")
		case f.Memory != nil:
			ps.add(at("warmup", "auto"), "warmup: auto watches the top tier for restarts, and a memory section puts the memory tier on top: leave one of them out")
		}
	}
	if l := f.Leases; l.TTL < 0 || l.Wait < 0 || l.ClockSkew < 0 {
		ps.add(at("leases"), "leases: durations must not be negative")
	}
	if p := f.Leases.Protocol; p != "" && !slices.Contains(memcached.LeaseProtocols(), memcached.LeaseProtocol(p)) {
		ps.add(at("leases", "protocol"), "leases: protocol %q: want auto, meta or classic", p)
	}
	if (f.Leases.Enabled || f.StaleWhileRevalidate > 0) && f.Memcached == nil {
		ps.add(at("leases"), "leases: need a memcached section")
	}
	if f.StaleWhileRevalidate > 0 && !f.Leases.Enabled {
		ps.add(at("stale_while_revalidate"), "stale_while_revalidate: needs leases.enabled (memcached keeps expired values only when written through leases)")
	}
	if f.EarlyRefresh < 0 {
		ps.add(at("early_refresh"), "early_refresh: %g: must not be negative", f.EarlyRefresh)
	}
	if f.TTLJitter < 0 || f.TTLJitter >= 1 {
		ps.add(at("ttl_jitter"), "ttl_jitter: %g: want a fraction in [0, 1)", f.TTLJitter)
	}
	if f.Stats.Graphite != "" {
		if _, _, err := net.SplitHostPort(f.Stats.Graphite); err != nil {
			ps.add(at("stats", "graphite"), "stats: graphite %q: want host:port", f.Stats.Graphite)
		}
	}
	if f.Stats.GraphiteInterval < 0 {
		ps.add(at("stats", "graphite_interval"), "stats: graphite_interval must not be negative")
	}
	if f.Stats.Listen != "" {
		if _, _, err := net.SplitHostPort(f.Stats.Listen); err != nil {
			ps.add(at("stats", "listen"), "stats: listen %q: want host:port", f.Stats.Listen)
		}
	}
	f.checkServe(&ps)
	if _, err := ParseLevel(f.Log.Level); err != nil {
		ps.add(at("log", "level"), "log: %v", err)
	}
	if f.Log.Format != "" && f.Log.Format != "text" && f.Log.Format != "json" {
		ps.add(at("log", "format"), "log: format %q: want text or json", f.Log.Format)
	}
	return ps
}

// SourceDSN returns the DSN, read from the environment when the file names
// a variable.
func (f *File) SourceDSN() (string, error) {
	if f.Source.DSNEnv == "" {
		return f.Source.DSN, nil
	}
	v := os.Getenv(f.Source.DSNEnv)
	if v == "" {
		return "", f.Errorf([]string{"source", "dsn_env"}, "environment variable %s is empty or unset", f.Source.DSNEnv)
	}
	return v, nil
}

// Has reports whether the setting at path is written in the file, to tell a
// value left to its default from one set to zero.
func (f *File) Has(path ...string) bool { return len(path) > 0 && f.keyNode(path...) != nil }
