package tiercache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/config"
	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/store/boltdb"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiercache.yml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// kvDatabase returns a private database with a table kv (k, v) holding
// rows, given as SQL values.
func kvDatabase(t *testing.T, rows string) *testenv.Database {
	t.Helper()
	db := testenv.MySQL(t)
	for _, stmt := range []string{"CREATE TABLE kv (k VARCHAR(64) PRIMARY KEY, v BLOB)", "INSERT INTO kv VALUES " + rows} {
		if _, err := db.DB.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func TestLoadBuildsAndServes(t *testing.T) {
	t.Parallel()
	mc := testenv.Memcached(t)
	db := kvDatabase(t, "('a', 'alpha'), ('b', 'beta')")
	dir := t.TempDir()
	path := writeConfig(t, fmt.Sprintf(`memcached:
  servers: ["%s:1"]
%sdurable:
  path: %s
  gc_interval: 0
source:
  dsn: %q
  query: SELECT k, v FROM kv WHERE k IN (?)
  batch: 50
negative_ttl: 10s
stale_if_error: 1m
stats:
  listen: 127.0.0.1:0
`, mc.Addr, testenv.MemcachedYAML(), filepath.Join(dir, "cache.db"), db.DSN))
	var logs bytes.Buffer
	chain, err := tiercache.Load(path, tiercache.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	ctx := context.Background()
	if v, err := chain.Cache.Get(ctx, "a"); err != nil || string(v) != "alpha" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	s := chain.Cache.Stats()
	if len(s.Tiers) != 2 || s.Tiers[0].Name != "memcached" || s.Tiers[1].Name != "bbolt" || s.Loader.Statements != 1 {
		t.Fatalf("stats: %+v", s)
	}
	for _, p := range []string{"/stats", "/metrics"} {
		resp, err := http.Get("http://" + chain.StatsAddr() + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
		if p == "/metrics" && !bytes.Contains(body, []byte(`tiercache_tier_duration_seconds_count{op="get",result="miss",tier="memcached"} 1`)) {
			t.Errorf("/metrics lacks the memcached get timing:\n%s", body)
		}
	}
	if err := chain.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + chain.StatsAddr() + "/stats"); err == nil {
		t.Error("the stats server still answers after Close")
	}
}

func TestBuildErrorsNameTheLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	held := filepath.Join(dir, "held.db")
	service, err := boltdb.Open(held)
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	src := "source:\n  dsn: u:p@tcp(127.0.0.1:1)/db\n  query: SELECT k, v FROM t WHERE k IN (?)\n"
	cases := []struct {
		name, file string
		line       int
		msg        string
		is         error
	}{
		{"a held durable file", src + "durable:\n  path: " + held + "\n  lock_timeout: 10ms\n", 5, "durable.path", boltdb.ErrLocked},
		{"a bad query", "source:\n  dsn: x@/y\n  query: SELECT k, v FROM t WHERE k = 1\n", 3, "source.query", nil},
		{"a taken stats port", src + "stats:\n  listen: " + taken.Addr().String() + "\n", 5, "stats.listen", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := tiercache.Load(writeConfig(t, c.file), tiercache.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Problems[0].Line != c.line || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("Load = %v, want an error at line %d about %s", err, c.line, c.msg)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("Load = %v, want it to wrap %v", err, c.is)
			}
		})
	}
}

// TestWatcherLogsEvents checks the event log: a warmup finishing and the
// source failing each make one line.
func TestWatcherLogsEvents(t *testing.T) {
	t.Parallel()
	mc := testenv.Memcached(t)
	dir := t.TempDir()
	path := writeConfig(t, fmt.Sprintf(`memcached:
  servers: ["%s:1"]
durable:
  path: %s
source:
  dsn: u:p@tcp(127.0.0.1:1)/nowhere?timeout=100ms
  query: SELECT k, v FROM t WHERE k IN (?)
`, mc.Addr, filepath.Join(dir, "cache.db")))
	var logs syncBuffer
	chain, err := tiercache.Load(path, tiercache.WithEventInterval(10*time.Millisecond),
		tiercache.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	ctx := context.Background()
	if _, err := chain.Cache.Get(ctx, "k"); err == nil {
		t.Fatal("Get from a source that is down succeeded")
	}
	if _, err := chain.Cache.Warmup(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	testenv.WaitFor(t, "the warmup and source failure log lines", func() bool {
		return strings.Contains(logs.String(), "warmup finished") && strings.Contains(logs.String(), "source of truth failing")
	})
}

// TestClusterSettings builds a pool with every cluster setting of the
// file: ejection, a hash tag, restart detection and automatic warmup.
func TestClusterSettings(t *testing.T) {
	t.Parallel()
	mc := testenv.Memcached(t)
	path := writeConfig(t, fmt.Sprintf(`memcached:
  servers: ["%s:1 a"]
  hash: fnv1a_64
  distribution: ketama
  hash_tag: "{}"
  failure_limit: 2
  retry_timeout: 500
  auto_eject_hosts: true
  ejected_ttl_cap: 1m
  restart_detection: 1s
durable:
  path: %s
source:
  dsn: x@/y
  query: SELECT k, v FROM t WHERE k IN (?)
warmup:
  auto: true
  rate: 1000
`, mc.Addr, filepath.Join(t.TempDir(), "cache.db")))
	chain, err := tiercache.Load(path, tiercache.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if err := chain.Close(); err != nil {
		t.Fatal(err)
	}

	bad := writeConfig(t, "memcached:\n  servers: [127.0.0.1:11211]\n  failure_limit: 0\n  retry_timeout: 1ms\n  ejected_ttl_cap: 10ms\n"+
		"source:\n  dsn: x@/y\n  query: SELECT k, v FROM t WHERE k IN (?)\n")
	_, err = tiercache.Load(bad)
	if err == nil || !strings.Contains(err.Error(), ":5: memcached.ejected_ttl_cap:") {
		t.Fatalf("Load with a too short ejected_ttl_cap = %v, want an error naming line 5", err)
	}
}

// TestAutoWarmupAfterARestart checks the wiring of restart detection and
// automatic warmup in a chain built from a file, and the log lines they
// make: memcached restarts, the chain notices and refills it from disk.
func TestAutoWarmupAfterARestart(t *testing.T) {
	t.Parallel()
	mc := testenv.Memcached(t)
	db := kvDatabase(t, "('a', 'alpha'), ('b', 'beta')")
	path := writeConfig(t, fmt.Sprintf(`memcached:
  servers: ["%s:1"]
  restart_detection: 50ms
%sdurable:
  path: %s
source:
  dsn: %q
  query: SELECT k, v FROM kv WHERE k IN (?)
warmup:
  auto: true
`, mc.Addr, testenv.MemcachedYAML(), filepath.Join(t.TempDir(), "cache.db"), db.DSN))
	var logs syncBuffer
	chain, err := tiercache.Load(path, tiercache.WithEventInterval(20*time.Millisecond),
		tiercache.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	ctx := context.Background()
	for _, k := range []string{"a", "b"} {
		if _, err := chain.Cache.Get(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	// Restart detection must know the first process before it can tell
	// a second one from it.
	testenv.WaitFor(t, "a first restart check", func() bool { return chain.Memcached.Counters()["restart_checks"] >= 1 })
	mc.Restart()
	testenv.WaitFor(t, "a restart and a warmup in the log", func() bool {
		l := logs.String()
		return strings.Contains(l, "server restart or flush detected") && strings.Contains(l, "warmup finished")
	})
	before := chain.Cache.Stats()
	if _, err := chain.Cache.Get(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if d := chain.Cache.Stats().Sub(before); d.Tiers[0].Hits != 1 {
		t.Fatalf("after the automatic warmup, memcached hits %d, want 1", d.Tiers[0].Hits)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutine and the
// test's.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLeaseSettings(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		protocol string // leases.protocol; "" leaves it out
		counter  string // the node counter that says which protocol is used
	}{
		{"", "lease_protocol_meta"},
		{"classic", "lease_protocol_classic"},
	} {
		t.Run("protocol="+c.protocol, func(t *testing.T) {
			t.Parallel()
			mc := testenv.Memcached(t)
			db := kvDatabase(t, "('a', 'alpha')")
			protocol := ""
			if c.protocol != "" {
				protocol = "  protocol: " + c.protocol + "\n"
			}
			path := writeConfig(t, fmt.Sprintf(`memcached:
  servers: ["%s:1"]
durable:
  path: %s
source:
  dsn: %q
  query: SELECT k, v FROM kv WHERE k IN (?)
leases:
  enabled: true
  ttl: 2s
  wait: 1s
%searly_refresh: 1
stale_while_revalidate: 5s
ttl_jitter: 0.1
`, mc.Addr, filepath.Join(t.TempDir(), "cache.db"), db.DSN, protocol))
			chain, err := tiercache.Load(path, tiercache.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
			if err != nil {
				t.Fatal(err)
			}
			defer chain.Close()
			ctx := context.Background()
			if v, err := chain.Cache.Get(ctx, "a"); err != nil || string(v) != "alpha" {
				t.Fatalf("Get = %q, %v", v, err)
			}
			if err := chain.Cache.Delete(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			s := chain.Cache.Stats().Leases
			if s.Won != 1 || s.Markers != 1 {
				t.Errorf("lease stats %+v: want the cold Get to win a lease and the Delete to leave a marker", s)
			}
			if n := chain.Memcached.NodeStats()[0].Counters[c.counter]; n != 1 {
				t.Errorf("%s = %d, want 1", c.counter, n)
			}
		})
	}
}
