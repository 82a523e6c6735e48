package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/loader/sqlload"
	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// rig is one chain over real servers: a private memcached, a bbolt file and
// a fresh MariaDB database with an articles table.
type rig struct {
	mc     *testenv.MemcachedServer
	db     *testenv.Database
	mcTier *memcached.Tier
	disk   *boltdb.Store
	loader *countingLoader
	cache  *tier.Cache
	path   string
}

type rigConfig struct {
	rows      int
	valueSize int
	keyType   string // SQL type of the id column
	mcOpts    []testenv.MemcachedOption
	tierOpts  []tier.Option
	diskOpts  []boltdb.Option
}

func newRig(t testing.TB, cfg rigConfig) *rig {
	t.Helper()
	if cfg.keyType == "" {
		cfg.keyType = "VARBINARY(10240)"
	}
	if cfg.valueSize == 0 {
		cfg.valueSize = 100
	}
	r := &rig{mc: testenv.Memcached(t, cfg.mcOpts...), db: testenv.MySQL(t)}
	if cfg.keyType == "INT" {
		mustExec(t, r.db.DB, "CREATE TABLE articles (id INT NOT NULL PRIMARY KEY, body LONGBLOB NOT NULL)")
	} else {
		// Keys up to 10 KB: a prefix index, not a primary key.
		mustExec(t, r.db.DB, fmt.Sprintf("CREATE TABLE articles (id %s NOT NULL, body LONGBLOB NOT NULL, KEY (id(255)))", cfg.keyType))
	}
	insertRows(t, r.db.DB, 1, cfg.rows, cfg.valueSize)

	r.path = filepath.Join(t.TempDir(), "cache.db")
	r.build(t, cfg.tierOpts, cfg.diskOpts)
	return r
}

// value is the body of row id in a table filled by insertRows.
func value(id, size int) []byte {
	prefix := fmt.Sprintf("row %d:", id)
	if size <= len(prefix) {
		return []byte(prefix)
	}
	return []byte(prefix + strings.Repeat("x", size-len(prefix)))
}

func insertRows(t testing.TB, db *sql.DB, from, n, size int) {
	t.Helper()
	const batch = 500
	for lo := from; lo < from+n; lo += batch {
		var sb strings.Builder
		var args []any
		sb.WriteString("INSERT INTO articles (id, body) VALUES ")
		for id := lo; id < lo+batch && id < from+n; id++ {
			if id > lo {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?)")
			args = append(args, fmt.Sprint(id), value(id, size))
		}
		if _, err := db.Exec(sb.String(), args...); err != nil {
			t.Fatal(err)
		}
	}
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// countingLoader counts the Load calls the chain makes, beside the server's
// own count, and can run a hook inside each.
type countingLoader struct {
	next  tier.Loader
	calls atomic.Int64
	hook  atomic.Pointer[func(ctx context.Context, keys []string)]
}

func (l *countingLoader) Load(ctx context.Context, keys []string) (map[string][]byte, error) {
	l.calls.Add(1)
	if h := l.hook.Load(); h != nil {
		(*h)(ctx, keys)
	}
	return l.next.Load(ctx, keys)
}

func (l *countingLoader) setHook(h func(ctx context.Context, keys []string)) { l.hook.Store(&h) }

// waitFor polls cond until it holds or fails the test after a generous
// deadline; it waits on background work and times nothing.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// filled waits until c has written what its trips found into the tiers:
// a trip answers its callers first.
func filled(t testing.TB, c *tier.Cache) {
	t.Helper()
	waitFor(t, "the fills", func() bool { return c.Stats().Fills.Pending == 0 })
}

// reopen builds a new chain over the same memcached, database and bbolt
// file, as a restarted process would.
func reopen(t testing.TB, old *rig, tierOpts ...tier.Option) *rig {
	t.Helper()
	r := &rig{mc: old.mc, db: old.db, path: old.path}
	r.build(t, tierOpts, nil)
	return r
}

// build opens the tiers and the chain over r's servers and file.
func (r *rig) build(t testing.TB, tierOpts []tier.Option, diskOpts []boltdb.Option) {
	t.Helper()
	r.mcTier = mustMemcached(t, r.mc.Addr)
	var err error
	r.disk, err = boltdb.Open(r.path, diskOpts...)
	if err != nil {
		t.Fatal(err)
	}
	src, err := sqlload.New(r.db.DB, "SELECT id, body FROM articles WHERE id IN (?)")
	if err != nil {
		t.Fatal(err)
	}
	r.loader = &countingLoader{next: src}
	r.cache, err = tier.New(r.loader, append([]tier.Option{
		tier.WithTier(r.mcTier, 10*time.Minute),
		tier.WithTier(r.disk, 24*time.Hour),
		tier.WithNegativeTTL(30 * time.Second),
	}, tierOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.cache.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
}

func mustMemcached(t testing.TB, addr string) *memcached.Tier {
	t.Helper()
	mc, err := memcached.New([]string{addr + ":1"}, memcached.WithTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return mc
}
