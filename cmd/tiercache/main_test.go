package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/internal/testenv"

	"github.com/tiercache/tiercache/cmd/tiercache/internal/bench"
)

// TestMain runs the command line instead of the tests when this binary is
// started as a worker of bench zipf, which runs os.Executable: in these
// tests, the test binary.
func TestMain(m *testing.M) {
	if os.Getenv(bench.WorkerEnv) != "" {
		main()
	}
	testenv.Main(m)
}

// cli runs the command in-process with args and stdin, and returns its exit
// code and what it printed.
func cli(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, stdio{in: strings.NewReader(stdin), out: &out, err: &errOut})
	return code, out.String(), errOut.String()
}

// mustCLI runs the command and fails the test unless it exits with want.
func mustCLI(t *testing.T, want int, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, stdin, args...)
	if code != want {
		t.Fatalf("tiercache %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out
}

// rig is a memcached, a database with an articles table of rows 1..rows,
// and a configuration file describing the chain over them. Its memcached
// settings are testenv's generous ones: the chains (bench's workers among
// them, race-detector processes sharing a small machine) must not take a
// slow but healthy memcached for a failing one, which these tests are not
// about.
type rig struct {
	mc      *testenv.MemcachedServer
	db      *testenv.Database
	dir     string
	config  string
	durable string
}

func newRig(t *testing.T, rows int, extra string) *rig {
	t.Helper()
	r := &rig{mc: testenv.Memcached(t), db: testenv.MySQL(t), dir: t.TempDir()}
	if _, err := r.db.DB.Exec("CREATE TABLE articles (id INT PRIMARY KEY, body VARBINARY(1024) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	var values []string
	var vals []any
	for id := 1; id <= rows; id++ {
		values = append(values, "(?, ?)")
		vals = append(vals, id, fmt.Sprintf("article %d", id))
	}
	if rows > 0 {
		if _, err := r.db.DB.Exec("INSERT INTO articles (id, body) VALUES "+strings.Join(values, ","), vals...); err != nil {
			t.Fatal(err)
		}
	}
	r.durable = filepath.Join(r.dir, "cache.db")
	r.config = filepath.Join(r.dir, "tiercache.yml")
	cfg := fmt.Sprintf(`memcached:
  servers:
    - %s:1 cache-a
  ttl: 10m
%sdurable:
  path: %s
  ttl: 24h
source:
  dsn: %q
  query: SELECT id, body FROM articles WHERE id IN (?)
negative_ttl: 30s
%s`, r.mc.Addr, testenv.MemcachedYAML(), r.durable, r.db.DSN, extra)
	if err := os.WriteFile(r.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}
