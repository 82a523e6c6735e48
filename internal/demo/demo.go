// Package demo tells tiercache's story against real servers: a table of
// rows in MariaDB, a cache chain memcached → bbolt → SQL in front of it, a
// stampede that costs one query, and a memcached restart that costs none.
// examples/quickstart and the tiercache command's demo both run it; the
// chain is built in story.run, the part worth copying.
package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/tiercache/tiercache/loader/sqlload"
	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
)

// Run tells the story on w. It needs a MySQL/MariaDB server whose DSN
// (with the right to create a database) is opts.DSN, or
// TIERCACHE_MYSQL_DSN when that is empty, and a memcached it may restart:
// TIERCACHE_MEMCACHED plus TIERCACHE_MEMCACHED_RESTART, or the memcached
// binary, which it then runs itself on a private loopback port.
func Run(ctx context.Context, w io.Writer, opts Options) error {
	s := &story{w: w}
	return s.run(ctx, opts)
}

// Options are the demo's settings. The zero value works.
type Options struct {
	// Rows is the number of rows in the demo table (default 10,000).
	Rows int
	// DSN overrides TIERCACHE_MYSQL_DSN.
	DSN string
}

// story writes the demo's narration.
type story struct{ w io.Writer }

func (s *story) run(ctx context.Context, opts Options) error {
	nrows := opts.Rows
	if nrows <= 0 {
		nrows = 10000
	}
	dsn := opts.DSN
	if dsn == "" {
		dsn = os.Getenv("TIERCACHE_MYSQL_DSN")
	}
	if dsn == "" {
		return errors.New("TIERCACHE_MYSQL_DSN is not set; run scripts/demo.sh, or point it at a MySQL server")
	}
	db, err := openDemoDB(ctx, dsn, nrows)
	if err != nil {
		return err
	}
	defer db.Close()

	mc, err := startMemcached()
	if err != nil {
		return err
	}
	defer mc.stop()

	dir, err := os.MkdirTemp("", "tiercache-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	s.step("1. The chain: memcached %s → bbolt %s → MariaDB (%d rows)", mc.addr, filepath.Join(dir, "cache.db"), nrows)
	mcTier, err := memcached.New([]string{mc.addr + ":1"})
	if err != nil {
		return err
	}
	disk, err := boltdb.Open(filepath.Join(dir, "cache.db"), boltdb.WithGCInterval(time.Minute))
	if err != nil {
		return err
	}
	src, err := sqlload.New(db, "SELECT id, body FROM articles WHERE id IN (?)")
	if err != nil {
		return err
	}
	cache, err := tier.New(src,
		tier.WithTier(mcTier, 10*time.Minute),
		tier.WithTier(disk, 24*time.Hour),
		tier.WithNegativeTTL(30*time.Second))
	if err != nil {
		return err
	}
	defer cache.Close()
	selects := &selectCounter{db: db, w: s.w}

	s.step("2. A cold Get goes to SQL")
	before, q0 := cache.Stats(), selects.read(ctx)
	t0 := time.Now()
	v, err := cache.Get(ctx, "42")
	if err != nil {
		return err
	}
	s.say("Get(42) = %q in %v; answered by %s; SELECTs at the server: %d", short(v), time.Since(t0).Round(time.Microsecond), answeredBy(cache.Stats().Sub(before)), selects.read(ctx)-q0)

	s.step("3. Hot Gets come from memcached")
	before, q0 = cache.Stats(), selects.read(ctx)
	lat := make([]time.Duration, 0, 2000)
	for i := 0; i < 2000; i++ {
		t := time.Now()
		if _, err := cache.Get(ctx, "42"); err != nil {
			return err
		}
		lat = append(lat, time.Since(t))
	}
	d := cache.Stats().Sub(before)
	s.say("2000 Gets: p50 %v, p99 %v; memcached hits %d; SELECTs at the server: %d", pct(lat, 50), pct(lat, 99), d.Tiers[0].Hits, selects.read(ctx)-q0)

	s.step("4. A stampede: 1000 goroutines Get one cold key at once")
	before, q0 = cache.Stats(), selects.read(ctx)
	var wg sync.WaitGroup
	var failures sync.Map
	start := make(chan struct{})
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := cache.Get(ctx, "4242"); err != nil {
				failures.Store(i, err)
			}
		}()
	}
	t0 = time.Now()
	close(start)
	wg.Wait()
	d = cache.Stats().Sub(before)
	nfail := 0
	failures.Range(func(any, any) bool { nfail++; return true })
	s.say("1000 Gets in %v, %d errors; callers that waited on another's load: %d; SELECTs at the server: %d",
		time.Since(t0).Round(time.Microsecond), nfail, d.SharedWaits, selects.read(ctx)-q0)

	s.step("5. GetMulti of 200 cold keys: one multi-get, one bbolt transaction, one SQL statement")
	keys := make([]string, 200)
	for i := range keys {
		keys[i] = fmt.Sprint(1000 + i)
	}
	keys = append(keys, "999999") // no such row
	before, q0 = cache.Stats(), selects.read(ctx)
	t0 = time.Now()
	m, err := cache.GetMulti(ctx, keys)
	if err != nil {
		return err
	}
	d = cache.Stats().Sub(before)
	s.say("%d of %d keys found in %v; loader statements %d; SELECTs at the server: %d",
		len(m), len(keys), time.Since(t0).Round(time.Microsecond), d.Loader.Statements, selects.read(ctx)-q0)

	s.step("6. memcached restarts (a new, empty process): bbolt answers, SQL is not touched")
	if err := mc.restart(); err != nil {
		return err
	}
	s.say("memcached restarted on %s", mc.addr)
	before, q0 = cache.Stats(), selects.read(ctx)
	t0 = time.Now()
	for _, k := range keys[:200] {
		if _, err := cache.Get(ctx, k); err != nil {
			return err
		}
	}
	d = cache.Stats().Sub(before)
	s.say("200 Gets in %v: memcached misses %d, bbolt hits %d, loader statements %d; SELECTs at the server: %d",
		time.Since(t0).Round(time.Microsecond), d.Tiers[0].Misses, d.Tiers[1].Hits, d.Loader.Statements, selects.read(ctx)-q0)

	s.step("7. Warmup refills memcached from bbolt")
	if err := mc.restart(); err != nil {
		return err
	}
	t0 = time.Now()
	ws, err := cache.Warmup(ctx)
	if err != nil {
		return err
	}
	s.say("restarted memcached again, then warmup in %v: scanned %d, written %d, skipped %d (expired or negative), already present %d",
		time.Since(t0).Round(time.Microsecond), ws.Scanned, ws.Written, ws.Skipped, ws.Present)
	before, q0 = cache.Stats(), selects.read(ctx)
	if _, err := cache.GetMulti(ctx, keys[:200]); err != nil {
		return err
	}
	d = cache.Stats().Sub(before)
	s.say("GetMulti of the 200 keys: memcached hits %d, bbolt hits %d; SELECTs at the server: %d", d.Tiers[0].Hits, d.Tiers[1].Hits, selects.read(ctx)-q0)

	s.step("8. The stats")
	s.printStats(cache.Stats())
	return nil
}

// answeredBy names the first tier with a hit in a stats delta, or the loader.
func answeredBy(d tier.Stats) string {
	for _, t := range d.Tiers {
		if t.Hits > 0 {
			return t.Name
		}
	}
	if d.Loader.Statements > 0 {
		return "SQL"
	}
	return "a shared load"
}

func (st *story) printStats(s tier.Stats) {
	fmt.Fprintf(st.w, "   %-10s %8s %8s %8s %10s\n", "tier", "hits", "misses", "errors", "backfills")
	for _, t := range s.Tiers {
		fmt.Fprintf(st.w, "   %-10s %8d %8d %8d %10d\n", t.Name, t.Hits, t.Misses, t.Errors, t.Backfills)
	}
	fmt.Fprintf(st.w, "   loader: %d statements, %d keys asked, %d loaded, %d not found, %d errors\n",
		s.Loader.Statements, s.Loader.Keys, s.Loader.Loaded, s.Loader.NotFound, s.Loader.Errors)
	fmt.Fprintf(st.w, "   singleflight: %d loads, %d shared waits\n", s.Flights, s.SharedWaits)
	for _, t := range s.Tiers {
		if len(t.Counters) == 0 {
			continue
		}
		names := make([]string, 0, len(t.Counters))
		for n := range t.Counters {
			names = append(names, n)
		}
		sort.Strings(names)
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = fmt.Sprintf("%s=%d", n, t.Counters[n])
		}
		fmt.Fprintf(st.w, "   %s: %s\n", t.Name, strings.Join(parts, " "))
	}
}

// openDemoDB creates the tiercache_demo database with a table of rows.
func openDemoDB(ctx context.Context, dsn string, nrows int) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("TIERCACHE_MYSQL_DSN: %w", err)
	}
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	for _, q := range []string{
		"DROP DATABASE IF EXISTS tiercache_demo",
		"CREATE DATABASE tiercache_demo",
		"CREATE TABLE tiercache_demo.articles (id INT PRIMARY KEY, body VARBINARY(1024) NOT NULL)",
	} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	cfg.DBName = "tiercache_demo"
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	const batch = 1000
	for lo := 1; lo <= nrows; lo += batch {
		var sb strings.Builder
		args := []any{}
		sb.WriteString("INSERT INTO articles (id, body) VALUES ")
		for id := lo; id < lo+batch && id <= nrows; id++ {
			if id > lo {
				sb.WriteString(",")
			}
			sb.WriteString("(?,?)")
			args = append(args, id, fmt.Sprintf("article %d: %s", id, strings.Repeat("lorem ipsum ", 7)))
		}
		if _, err := db.ExecContext(ctx, sb.String(), args...); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// selectCounter reads the server's count of SELECT statements, so the demo
// shows what the database saw rather than what the library says it sent.
type selectCounter struct {
	db *sql.DB
	w  io.Writer
}

func (s *selectCounter) read(ctx context.Context) int64 {
	var name string
	var n int64
	if err := s.db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Com_select'").Scan(&name, &n); err != nil {
		fmt.Fprintf(s.w, "   (reading Com_select: %v)\n", err)
	}
	return n
}

// memcachedProc is the memcached the demo restarts: one it runs itself, or
// the user's, restarted by their command.
type memcachedProc struct {
	addr       string
	restartCmd string
	cmd        *exec.Cmd
}

func startMemcached() (*memcachedProc, error) {
	if addr := os.Getenv("TIERCACHE_MEMCACHED"); addr != "" {
		p := &memcachedProc{addr: addr, restartCmd: os.Getenv("TIERCACHE_MEMCACHED_RESTART")}
		if p.restartCmd == "" {
			return nil, errors.New("TIERCACHE_MEMCACHED is set but TIERCACHE_MEMCACHED_RESTART is not: the demo must restart memcached")
		}
		return p, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &memcachedProc{addr: l.Addr().String()}
	l.Close()
	return p, p.spawn()
}

func (p *memcachedProc) spawn() error {
	_, port, _ := net.SplitHostPort(p.addr)
	args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-t", "1", "-m", "64"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses to run as root otherwise
	}
	p.cmd = exec.Command("memcached", args...)
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("starting memcached (install it, or run scripts/demo.sh): %w", err)
	}
	return waitListening(p.addr)
}

func (p *memcachedProc) restart() error {
	if p.cmd == nil {
		out, err := exec.Command("sh", "-c", p.restartCmd).CombinedOutput()
		if err != nil {
			return fmt.Errorf("restarting memcached with %q: %v: %s", p.restartCmd, err, out)
		}
		return waitListening(p.addr)
	}
	p.stop()
	return p.spawn()
}

func (p *memcachedProc) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

func waitListening(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("memcached at %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *story) step(format string, args ...any) { fmt.Fprintf(s.w, "\n"+format+"\n", args...) }
func (s *story) say(format string, args ...any)  { fmt.Fprintf(s.w, "   "+format+"\n", args...) }

func short(b []byte) string {
	if len(b) > 24 {
		return string(b[:24]) + "…"
	}
	return string(b)
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100].Round(time.Microsecond)
}
