package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/config"
)

const goodFile = `# a full chain
memcached:
  servers:
    - 127.0.0.1:11211:1 cache-a
    - 127.0.0.1:11212:2 cache-b
  hash: fnv1a_64
  distribution: ketama
  hash_tag: "{}"
  timeout: 250          # milliseconds, as in nutcracker.yml
  failure_limit: 3
  retry_timeout: 30s
  auto_eject_hosts: true
  key_prefix: "app:"
  max_item_size: 1MiB
  ttl: 10m
durable:
  path: /var/lib/app/cache.db
  ttl: 24h
  gc_interval: 1m
  max_entries: 1000000
  max_bytes: 2GiB
  lock_timeout: 500ms
  quarantine_corrupt: true
source:
  dsn_env: APP_DSN
  query: SELECT id, body FROM articles WHERE id IN (?)
  batch: 200
  prepared_statements: false
negative_ttl: 30s
stale_if_error: 5m
stats:
  listen: 127.0.0.1:22222
log:
  level: info
  format: json
`

func TestParseGood(t *testing.T) {
	t.Parallel()
	f, err := config.Parse([]byte(goodFile), "good.yml")
	if err != nil {
		t.Fatal(err)
	}
	mc := f.Memcached
	if mc == nil || len(mc.Servers) != 2 {
		t.Fatalf("memcached = %+v", mc)
	}
	if s := mc.Servers[1]; s.Addr != "127.0.0.1:11212" || s.Weight != 2 || s.Name != "cache-b" || s.Line != 5 {
		t.Errorf("second server = %+v", s)
	}
	if got := mc.ServerSpecs(); got[0] != "127.0.0.1:11211:1 cache-a" {
		t.Errorf("ServerSpecs = %q", got)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"hash", mc.Hash, "fnv1a_64"},
		{"hash_tag", string(mc.HashTag), "{}"},
		{"timeout", mc.Timeout.D(), 250 * time.Millisecond},
		{"retry_timeout", mc.RetryTimeout.D(), 30 * time.Second},
		{"failure_limit", mc.FailureLimit, 3},
		{"auto_eject_hosts", mc.AutoEjectHosts, true},
		{"max_item_size", int64(mc.MaxItemSize), int64(1 << 20)},
		{"memcached ttl", mc.TTL.D(), 10 * time.Minute},
		{"durable path", f.Durable.Path, "/var/lib/app/cache.db"},
		{"durable max_bytes", int64(f.Durable.MaxBytes), int64(2 << 30)},
		{"durable lock_timeout", f.Durable.LockTimeout.D(), 500 * time.Millisecond},
		{"quarantine", f.Durable.Quarantine, true},
		{"driver default", f.Source.Driver, "mysql"},
		{"batch", f.Source.Batch, 200},
		{"prepared", *f.Source.PreparedStatements, false},
		{"negative_ttl", f.NegativeTTL.D(), 30 * time.Second},
		{"stale_if_error", f.StaleIfError.D(), 5 * time.Minute},
		{"stats listen", f.Stats.Listen, "127.0.0.1:22222"},
		{"line of durable.path", f.Line("durable", "path"), 17},
		{"line of a missing key falls back to its section", f.Line("durable", "gc_grace"), 16},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	f, err := config.Parse([]byte("memcached:\n  servers: [127.0.0.1:11211]\ndurable:\n  path: x.db\nsource:\n  dsn: u:p@/db\n  query: SELECT k, v FROM t WHERE k IN (?)\n"), "min.yml")
	if err != nil {
		t.Fatal(err)
	}
	if f.Memcached.TTL.D() != config.DefaultMemcachedTTL || f.Durable.TTL.D() != config.DefaultDurableTTL {
		t.Errorf("ttls = %v, %v; want the defaults", f.Memcached.TTL.D(), f.Durable.TTL.D())
	}
	if f.NegativeTTL != 0 || f.Source.PreparedStatements != nil {
		t.Errorf("negative_ttl %v, prepared %v: want unset", f.NegativeTTL, f.Source.PreparedStatements)
	}

	f, err = config.Parse([]byte("source:\n  dsn: x\n  query: SELECT k, v FROM t WHERE k IN (?)\n"), "source-only.yml")
	if err != nil {
		t.Fatal(err)
	}
	if f.Memcached != nil || f.Durable != nil {
		t.Errorf("sections not in the file: memcached %v, durable %v; want nil", f.Memcached, f.Durable)
	}
}

// source is a valid source section, appended to files whose mistakes are
// elsewhere.
const source = "source:\n  dsn: u:p@/db\n  query: SELECT k, v FROM t WHERE k IN (?)\n"

func TestParseBad(t *testing.T) {
	t.Parallel()
	type want struct {
		line int
		msg  string // a part of the message
	}
	cases := []struct {
		name string
		file string
		want []want
	}{
		{"unknown top-level key", source + "negative_tll: 30s\n", []want{{4, `unknown key "negative_tll" in the top level`}}},
		{"unknown key in a section", "durable:\n  path: x\n  pth: y\n" + source, []want{{3, `unknown key "pth" in durable`}}},
		{"unknown key in discovery", "memcached:\n  discovery:\n    endpoint: h:1\n    every: 1m\n" + source, []want{{4, `unknown key "every" in memcached.discovery`}}},
		{"several problems at once", "memcached:\n  servers: [127.0.0.1:1]\n  ttl: 600\n  hashh: x\ndurable:\n  path: x\n  max_entries: lots\n" + source,
			[]want{{3, "write a unit"}, {4, `unknown key "hashh"`}, {7, `"lots" is not a whole number`}}},
		{"duration without a unit", source + "negative_ttl: 30\n", []want{{4, `"30": write a unit`}}},
		{"bad duration", source + "stale_if_error: soon\n", []want{{4, `"soon" is not a duration`}}},
		{"negative duration", source + "negative_ttl: -1s\n", []want{{4, "negative duration"}}},
		{"bad size", "durable:\n  path: x\n  max_bytes: 2 lots\n" + source, []want{{3, `"2 lots" is not a size`}}},
		{"fractional bytes", "durable:\n  path: x\n  max_bytes: 1.5\n" + source, []want{{3, "whole number of bytes"}}},
		{"bad server", "memcached:\n  servers:\n    - 127.0.0.1:11211:1\n    - nohost\n" + source, []want{{4, "missing port"}}},
		{"server weight zero", "memcached:\n  servers:\n    - 127.0.0.1:11211:0\n" + source, []want{{3, "weight"}}},
		{"server listed twice", "memcached:\n  servers:\n    - 127.0.0.1:11211:1\n    - 127.0.0.1:11211:2\n" + source, []want{{4, "127.0.0.1:11211 listed twice (first at line 3)"}}},
		{"hash tag of three bytes", "memcached:\n  servers: [127.0.0.1:11211]\n  hash_tag: '{{}'\n" + source, []want{{3, "exactly two characters"}}},
		{"unknown hash", "memcached:\n  servers: [127.0.0.1:11211]\n  hash: sha1\n" + source, []want{{3, `unknown hash "sha1"`}}},
		{"unknown distribution", "memcached:\n  servers: [127.0.0.1:11211]\n  distribution: rendezvous\n" + source, []want{{3, `unknown distribution "rendezvous"`}}},
		{"no servers", "memcached:\n  ttl: 1m\n" + source, []want{{1, "servers or discovery is required"}}},
		{"servers and discovery", "memcached:\n  servers: [127.0.0.1:11211]\n  discovery:\n    endpoint: h:1\n" + source, []want{{3, "exclude each other"}}},
		{"bad discovery endpoint", "memcached:\n  discovery:\n    endpoint: nohostport\n" + source, []want{{3, "want host:port"}}},
		{"negative failure limit", "memcached:\n  servers: [127.0.0.1:11211]\n  failure_limit: -1\n" + source, []want{{3, "must not be negative"}}},
		{"durable without path", "durable:\n  ttl: 1h\n" + source, []want{{1, "path is required"}}},
		{"no source", "durable:\n  path: x\n", []want{{0, "source"}}},
		{"source without query", "source:\n  dsn: x\n", []want{{1, "query is required"}}},
		{"dsn and dsn_env", "source:\n  dsn: x\n  dsn_env: Y\n  query: q IN (?)\n", []want{{3, "exclude each other"}}},
		{"unknown driver", "source:\n  driver: postgres\n  dsn: x\n  query: q IN (?)\n", []want{{2, "only mysql"}}},
		{"bool expected", source + "durable:\n  path: x\n  quarantine_corrupt: maybe\n", []want{{6, "is not true or false"}}},
		{"list expected", "memcached:\n  servers: 127.0.0.1:11211\n" + source, []want{{2, "is not a list"}}},
		{"section is a scalar", "durable: yes\n" + source, []want{{1, "is not a mapping"}}},
		{"auto warmup without restart detection", "memcached:\n  servers: [127.0.0.1:11211]\ndurable:\n  path: x\nwarmup:\n  auto: true\n" + source, []want{{6, "needs memcached.restart_detection"}}},
		{"auto warmup without durable", "memcached:\n  servers: [127.0.0.1:11211]\n  restart_detection: 1s\nwarmup:\n  auto: true\n" + source, []want{{5, "needs a memcached and a durable section"}}},
		{"negative warmup rate", "warmup:\n  rate: -5\n" + source, []want{{2, "must not be negative"}}},
		{"negative warmup burst", "warmup:\n  rate: 5\n  burst: -1\n" + source, []want{{3, "burst -1: must not be negative"}}},
		{"unknown key in warmup", "warmup:\n  automatic: true\n" + source, []want{{2, `unknown key "automatic" in warmup`}}},
		{"unknown key in leases", "memcached:\n  servers: [127.0.0.1:11211]\nleases:\n  enable: true\n" + source, []want{{4, `unknown key "enable" in leases`}}},
		{"unknown lease protocol", "memcached:\n  servers: [127.0.0.1:11211]\nleases:\n  enabled: true\n  protocol: binary\n" + source, []want{{5, `leases: protocol "binary": want auto, meta or classic`}}},
		{"stale-while-revalidate without leases", "memcached:\n  servers: [127.0.0.1:11211]\nstale_while_revalidate: 30s\n" + source, []want{{3, "needs leases.enabled"}}},
		{"jitter out of range", "ttl_jitter: 1.5\n" + source, []want{{1, "want a fraction"}}},
		{"negative early refresh", "early_refresh: -1\n" + source, []want{{1, "must not be negative"}}},
		{"bad stats listen", source + "stats:\n  listen: 22222\n", []want{{5, "want host:port"}}},
		{"bad log level", source + "log:\n  level: loud\n", []want{{5, `level "loud"`}}},
		{"duplicate key", source + "negative_ttl: 1s\nnegative_ttl: 2s\n", []want{{5, `"negative_ttl" already defined at line 4`}}},
		{"syntax error", "source:\n  dsn: x\n query: y\n", []want{{2, "did not find expected key"}}},
		{"tab indentation", "source:\n\tdsn: x\n", []want{{2, "tab"}}},
		{"not a mapping", "- a\n- b\n", []want{{1, "want a mapping"}}},
		{"empty file", "", []want{{0, "empty configuration"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte(c.file), "bad.yml")
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse = %v, want a *config.Error", err)
			}
			if len(ce.Problems) != len(c.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(ce.Problems), len(c.want), err)
			}
			for i, w := range c.want {
				p := ce.Problems[i]
				if p.Line != w.line || !strings.Contains(p.Msg, w.msg) {
					t.Errorf("problem %d = line %d %q, want line %d containing %q", i, p.Line, p.Msg, w.line, w.msg)
				}
			}
			if w := c.want[0]; w.line > 0 && !strings.HasPrefix(err.Error(), "bad.yml:") {
				t.Errorf("message %q does not start with the file name", err)
			}
		})
	}
}

func TestParseClusterSettings(t *testing.T) {
	t.Parallel()
	f, err := config.Parse([]byte("memcached:\n  discovery:\n    endpoint: cfg.example:11211\n    retry: true\n"+
		"  restart_detection: 2s\n  ejected_ttl_cap: 1m\ndurable:\n  path: x\nwarmup:\n  auto: true\n  rate: 500\n  burst: 20000\n"+source), "cluster.yml")
	if err != nil {
		t.Fatal(err)
	}
	m := f.Memcached
	if m.Discovery.Endpoint != "cfg.example:11211" || !m.Discovery.Retry || m.Discovery.Interval != 0 ||
		m.RestartDetection.D() != 2*time.Second || m.EjectedTTLCap.D() != time.Minute || !f.Warmup.Auto || f.Warmup.Rate != 500 || f.Warmup.Burst != 20000 {
		t.Fatalf("memcached %+v, discovery %+v, warmup %+v", m, m.Discovery, f.Warmup)
	}
}

func TestParseLeases(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"auto", "meta", "classic"} {
		f, err := config.Parse([]byte("memcached:\n  servers: [127.0.0.1:22121]\nleases:\n  enabled: true\n  ttl: 2s\n  protocol: "+p+"\n"+source), "leases.yml")
		if err != nil {
			t.Fatal(err)
		}
		if l := f.Leases; !l.Enabled || l.TTL.D() != 2*time.Second || l.Protocol != p {
			t.Errorf("leases %+v, want enabled, ttl 2s, protocol %s", l, p)
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tiercache.yml")
	if err := os.WriteFile(path, []byte(source+"bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path)
	if err == nil || err.Error() != path+`:4: unknown key "bogus" in the top level` {
		t.Fatalf("Load = %v", err)
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file = %v, want ErrNotExist", err)
	}
}

func TestSourceDSN(t *testing.T) {
	f, err := config.Parse([]byte("source:\n  dsn_env: TIERCACHE_TEST_DSN\n  query: q IN (?)\n"), "env.yml")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TIERCACHE_TEST_DSN", "")
	if _, err := f.SourceDSN(); err == nil || !strings.Contains(err.Error(), "env.yml:2:") {
		t.Fatalf("SourceDSN with the variable unset = %v, want an error at line 2", err)
	}
	t.Setenv("TIERCACHE_TEST_DSN", "u:p@/db")
	if dsn, err := f.SourceDSN(); err != nil || dsn != "u:p@/db" {
		t.Fatalf("SourceDSN = %q, %v", dsn, err)
	}
}

func TestErrorf(t *testing.T) {
	t.Parallel()
	f, err := config.Parse([]byte(goodFile), "good.yml")
	if err != nil {
		t.Fatal(err)
	}
	got := f.Errorf([]string{"memcached", "hash"}, "not supported yet").Error()
	if want := "good.yml:6: memcached.hash: not supported yet"; got != want {
		t.Fatalf("Errorf = %q, want %q", got, want)
	}
}

// FuzzParse checks that no input makes Parse panic, and that every error
// is a *config.Error.
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodFile))
	f.Add([]byte(source))
	f.Add([]byte("memcached:\n  servers: [a:1:2 x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := config.Parse(data, "fuzz.yml")
		var ce *config.Error
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("Parse error %T %v is not a *config.Error", err, err)
		}
	})
}
