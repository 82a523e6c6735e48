package tiercache_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/config"
	"github.com/tiercache/tiercache/internal/testenv"
)

// servedTimeout bounds each exchange with the server: generous, for a
// loaded machine.
const servedTimeout = 20 * time.Second

// startServed runs tiercache serve's stack over a private memcached and
// a kv table, and returns its address; it shuts down when the test ends.
// The memcached timeout is generous (the default is 200ms) so that a busy
// machine running the PHP and Python clients beside the race detector
// does not turn a slow round trip into a failed set.
func startServed(t *testing.T, extra string) (addr string, db *testenv.Database, mc *testenv.MemcachedServer) {
	addr, db, mc, _ = startServedChain(t, extra)
	return addr, db, mc
}

// startServedChain is startServed that also returns the Served.
func startServedChain(t *testing.T, extra string) (addr string, db *testenv.Database, mc *testenv.MemcachedServer, served *tiercache.Served) {
	t.Helper()
	mc = testenv.Memcached(t)
	db = kvDatabase(t, "('1', 'one'), ('2', 'two'), ('3', 'three')")
	path := writeConfig(t, fmt.Sprintf(`memcached:
  servers: ["%s:1"]
  hash: fnv1a_64
  distribution: ketama
  timeout: 5s
  restart_detection: 100ms
durable:
  path: %s
  gc_interval: 0
source:
  dsn: %q
  query: SELECT k, v FROM kv WHERE k IN (?)
serve:
  listen: 127.0.0.1:0
  route: article
%s`, mc.Addr, filepath.Join(t.TempDir(), "cache.db"), db.DSN, extra))
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tiercache.BuildServed(f, tiercache.WithoutStatsServer())
	if err != nil {
		t.Fatal(err)
	}
	served = s
	ln, err := s.Listen()
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return ln.Addr().String(), db, mc, served
}

// exchange sends req on a fresh connection, then "mn", and returns the
// reply before "MN".
func exchange(t *testing.T, addr, req string) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, servedTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(servedTimeout))
	if _, err := io.WriteString(nc, req+"mn\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc)
	var out strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%q: %v after %q", req, err, out.String())
		}
		if line == "MN\r\n" {
			return out.String()
		}
		out.WriteString(line)
	}
}

func TestServedReadThrough(t *testing.T) {
	t.Parallel()
	addr, db, mc, served := startServedChain(t, "")
	before := db.Selects(t)
	if got, want := exchange(t, addr, "get article:1 article:2 article:404 1\r\n"),
		"VALUE article:1 0 3\r\none\r\nVALUE article:2 0 3\r\ntwo\r\nEND\r\n"; got != want {
		t.Fatalf("get through the route: %q, want %q", got, want)
	}
	if n := db.Selects(t) - before; n != 1 {
		t.Fatalf("one get of three route keys ran %d SELECTs, want 1", n)
	}
	// The route's keys carry its prefix in memcached, so that a plain key
	// "1" is another item.
	direct := testenv.RawClient(mc.Addr)
	if _, err := direct.Get("article:1"); err != nil {
		t.Fatalf("memcached lacks the route's key article:1: %v", err)
	}
	if got := exchange(t, addr, "set 1 5 0 5\r\nplain\r\nget 1 article:1\r\n"); got != "STORED\r\nVALUE 1 5 5\r\nplain\r\nVALUE article:1 0 3\r\none\r\nEND\r\n" {
		t.Fatalf("plain key beside a route key: %q", got)
	}
	if got := exchange(t, addr, "set article:1 1 0 3\r\nnew\r\n"); !strings.HasPrefix(got, "CLIENT_ERROR ") {
		t.Fatalf("set of a route key with flags: %q, want CLIENT_ERROR", got)
	}
	// set after an UPDATE writes every tier; delete invalidates them.
	if _, err := db.DB.Exec("UPDATE kv SET v = 'uno' WHERE k = '1'"); err != nil {
		t.Fatal(err)
	}
	if got := exchange(t, addr, "set article:1 0 0 3\r\nuno\r\nget article:1\r\n"); got != "STORED\r\nVALUE article:1 0 3\r\nuno\r\nEND\r\n" {
		t.Fatalf("set then get of a route key: %q", got)
	}
	if _, err := db.DB.Exec("UPDATE kv SET v = 'eins' WHERE k = '1'"); err != nil {
		t.Fatal(err)
	}
	before = db.Selects(t)
	if got := exchange(t, addr, "delete article:1\r\nget article:1\r\n"); got != "DELETED\r\nVALUE article:1 0 4\r\neins\r\nEND\r\n" {
		t.Fatalf("delete then get of a route key: %q", got)
	}
	if n := db.Selects(t) - before; n != 1 {
		t.Fatalf("a get after delete ran %d SELECTs, want 1", n)
	}
	// cas on a route key: the token of gets matches while the value is
	// unchanged.
	reply := exchange(t, addr, "gets article:2\r\n")
	var cas uint64
	if _, err := fmt.Sscanf(reply, "VALUE article:2 0 3 %d\r\n", &cas); err != nil {
		t.Fatalf("gets: %q: %v", reply, err)
	}
	if got := exchange(t, addr, fmt.Sprintf("cas article:2 0 0 3 %d\r\nzwo\r\ncas article:2 0 0 3 %d\r\ndos\r\n", cas, cas)); got != "STORED\r\nEXISTS\r\n" {
		t.Fatalf("cas twice with one token: %q", got)
	}
	stats := exchange(t, addr, "stats\r\n")
	for _, want := range []string{"STAT article:loader_statements ", "STAT article:memcached_hits ", "STAT plain:hits ", "STAT pool:plain:hits "} {
		if !strings.Contains(stats, want) {
			t.Errorf("stats lack %q:\n%s", want, stats)
		}
	}
	// The server's counters are in the chain's Prometheus registry too.
	rec := httptest.NewRecorder()
	served.Chain.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if body := rec.Body.String(); !strings.Contains(body, "tiercache_serve_cmd_get_total ") || !strings.Contains(body, "tiercache_serve_curr_connections ") {
		t.Errorf("/metrics lacks the server's counters:\n%.2000s", body)
	}
}

// TestServedColdKeyOneSelect: many clients asking for one cold key at
// once cost one SELECT.
func TestServedColdKeyOneSelect(t *testing.T) {
	t.Parallel()
	addr, db, _ := startServed(t, "")
	before := db.Selects(t)
	const clients = 50
	var wg sync.WaitGroup
	replies := make([]string, clients)
	start := make(chan struct{})
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.DialTimeout("tcp", addr, servedTimeout)
			if err != nil {
				replies[i] = err.Error()
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(servedTimeout))
			<-start
			io.WriteString(nc, "get article:3\r\n")
			b := make([]byte, 64)
			n, _ := io.ReadAtLeast(nc, b, len("VALUE article:3 0 5\r\nthree\r\nEND\r\n"))
			replies[i] = string(b[:n])
		}()
	}
	close(start)
	wg.Wait()
	for i, r := range replies {
		if r != "VALUE article:3 0 5\r\nthree\r\nEND\r\n" {
			t.Fatalf("client %d: %q", i, r)
		}
	}
	if n := db.Selects(t) - before; n != 1 {
		t.Fatalf("%d clients of one cold key ran %d SELECTs, want 1", clients, n)
	}
}

// TestServedSourceDown: a route key the source cannot be asked for is a
// miss by default, a SERVER_ERROR with on_source_error: error; plain keys
// do not care.
func TestServedSourceDown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ extra, want string }{
		{"", "END\r\n"},
		{"  on_source_error: error\n", "SERVER_ERROR "},
	} {
		addr, db, _ := startServed(t, tc.extra)
		if _, err := db.DB.Exec("DROP TABLE kv"); err != nil {
			t.Fatal(err)
		}
		if got := exchange(t, addr, "get article:1\r\n"); !strings.HasPrefix(got, tc.want) {
			t.Errorf("on_source_error %q: get of a route key with the source failing: %q, want %q...", tc.extra, got, tc.want)
		}
		if got := exchange(t, addr, "set p 0 0 1\r\nx\r\nget p\r\n"); got != "STORED\r\nVALUE p 0 1\r\nx\r\nEND\r\n" {
			t.Errorf("plain key with the source failing: %q", got)
		}
	}
}

// TestServedWarmupAfterRestart: memcached restarts behind the server; the
// route's keys are answered from the durable tier without a SELECT, and
// the warmup puts them back into memcached under the route's prefix.
func TestServedWarmupAfterRestart(t *testing.T) {
	t.Parallel()
	addr, db, mc := startServed(t, "warmup:\n  auto: true\n")
	if got := exchange(t, addr, "get article:1 article:2\r\n"); got != "VALUE article:1 0 3\r\none\r\nVALUE article:2 0 3\r\ntwo\r\nEND\r\n" {
		t.Fatalf("first get: %q", got)
	}
	mc.Restart()
	direct := testenv.RawClient(mc.Addr)
	deadline := time.Now().Add(servedTimeout)
	for {
		_, err1 := direct.Get("article:1")
		_, err2 := direct.Get("article:2")
		if err1 == nil && err2 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcached not warmed up after its restart: %v, %v", err1, err2)
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := db.Selects(t)
	if got := exchange(t, addr, "get article:1 article:2\r\n"); got != "VALUE article:1 0 3\r\none\r\nVALUE article:2 0 3\r\ntwo\r\nEND\r\n" {
		t.Fatalf("get after the restart: %q", got)
	}
	if n := db.Selects(t) - before; n != 0 {
		t.Fatalf("%d SELECTs after the restart, want 0", n)
	}
}
