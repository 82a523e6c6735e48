package sqlload_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/loader/sqlload"
	"github.com/tiercache/tiercache/tier"
)

var _ tier.Loader = (*sqlload.Loader)(nil)

// mode is one way a Loader can send its statements.
type mode struct {
	name        string
	interpolate bool // the DSN's interpolateParams
	opts        []sqlload.Option
}

var modes = []mode{
	{"prepared", false, nil},
	{"query", false, []sqlload.Option{sqlload.WithPreparedStatements(false)}},
	{"interpolated", true, []sqlload.Option{sqlload.WithPreparedStatements(false)}},
}

// eachMode runs fn, in parallel, for each mode: statements prepared once
// and cached (the default); one-off queries, which the driver prepares,
// executes and closes; one-off queries the driver interpolates into text.
func eachMode(t *testing.T, fn func(t *testing.T, d *testenv.Database, db *sql.DB, opts ...sqlload.Option)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			d := testenv.MySQL(t)
			fn(t, d, openDB(t, d, m.interpolate), m.opts...)
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, d *testenv.Database, db *sql.DB, opts ...sqlload.Option) {
		exec(t, db,
			"CREATE TABLE articles (id INT PRIMARY KEY, body BLOB)",
			"INSERT INTO articles VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, NULL), (5, '')")
		src, err := sqlload.New(db, "SELECT id, body FROM articles WHERE id IN (?)", opts...)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name    string
			keys    []string
			want    map[string]string
			ignored int64 // rows the server matched that are not byte for byte a key
		}{
			{"single key", []string{"2"}, map[string]string{"2": "two"}, 0},
			{"batch", []string{"1", "2", "3"}, map[string]string{"1": "one", "2": "two", "3": "three"}, 0},
			{"batch padded to 8", []string{"5", "4", "3", "2", "1"}, map[string]string{"1": "one", "2": "two", "3": "three", "4": "", "5": ""}, 0},
			{"missing keys", []string{"1", "404", "405"}, map[string]string{"1": "one"}, 0},
			{"all missing", []string{"404"}, map[string]string{}, 0},
			{"duplicates", []string{"3", "1", "3", "3", "1"}, map[string]string{"1": "one", "3": "three"}, 0},
			{"NULL value is an empty value", []string{"4"}, map[string]string{"4": ""}, 0},
			{"empty value", []string{"5"}, map[string]string{"5": ""}, 0},
			{"keys not in canonical form find nothing", []string{"01", "2abc", " 3", "1.0"}, map[string]string{}, 3},
		}
		for _, tt := range tests {
			before, beforeStats := d.Selects(t), src.Stats()
			got, err := src.Load(context.Background(), tt.keys)
			if err != nil {
				t.Fatalf("%s: Load(%q): %v", tt.name, tt.keys, err)
			}
			if len(got) != len(tt.want) {
				t.Errorf("%s: Load(%q) = %q, want %q", tt.name, tt.keys, got, tt.want)
			}
			for k, v := range tt.want {
				if gv, ok := got[k]; !ok || string(gv) != v || gv == nil {
					t.Errorf("%s: Load(%q)[%q] = %q, %v; want %q", tt.name, tt.keys, k, gv, ok, v)
				}
			}
			if n := d.Selects(t) - before; n != 1 {
				t.Errorf("%s: %d SELECTs at the server, want 1", tt.name, n)
			}
			if st := src.Stats().Sub(beforeStats); st.Statements != 1 || st.Loads != 1 || st.Rows != int64(len(tt.want)) || st.Ignored != tt.ignored {
				t.Errorf("%s: stats %+v, want 1 statement, 1 load, %d rows, %d ignored", tt.name, st, len(tt.want), tt.ignored)
			}
		}

		before := d.Selects(t)
		if got, err := src.Load(context.Background(), nil); err != nil || len(got) != 0 || got == nil {
			t.Errorf("Load(nil) = %v, %v; want an empty map", got, err)
		}
		if n := d.Selects(t) - before; n != 0 {
			t.Errorf("Load(nil) ran %d SELECTs", n)
		}

		if err := src.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := src.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		got, err := src.Load(context.Background(), []string{"1", "2"})
		if err != nil || len(got) != 2 {
			t.Fatalf("Load after Close = %q, %v; want it to still work", got, err)
		}
	})
}

// TestLoadConcurrent runs Loads of every batch size at once, for the race
// detector and the statement cache.
func TestLoadConcurrent(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, d *testenv.Database, db *sql.DB, opts ...sqlload.Option) {
		exec(t, db, "CREATE TABLE t (k INT PRIMARY KEY, v VARCHAR(20))",
			"INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_100")
		src, err := sqlload.New(db, "SELECT k, v FROM t WHERE k IN (?)", append(opts, sqlload.WithMaxBatch(20))...)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Go(func() {
				for n := 1; n <= 40; n++ {
					keys := make([]string, n)
					for i := range keys {
						keys[i] = strconv.Itoa((g*41+n*7+i)%120 + 1) // some above 100: missing
					}
					got, err := src.Load(context.Background(), keys)
					if err != nil {
						errs <- err
						return
					}
					for _, k := range keys {
						if v, ok := got[k]; ok != (len(k) < 3 || k == "100") || ok && string(v) != "v"+k {
							errs <- fmt.Errorf("keys %q: [%s] = %q, %v", keys, k, v, ok)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func TestLoadSplitsLargeCalls(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, d *testenv.Database, db *sql.DB, opts ...sqlload.Option) {
		exec(t, db, "CREATE TABLE t (k VARCHAR(20) PRIMARY KEY, v VARCHAR(20))",
			"INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_1200") // MariaDB's Sequence engine
		src, err := sqlload.New(db, "SELECT k, v FROM t WHERE k IN (?)", append(opts, sqlload.WithMaxBatch(500))...)
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]string, 0, 1300)
		for i := 1; i <= 1200; i++ {
			keys = append(keys, strconv.Itoa(i))
		}
		keys = append(keys, keys[:100]...) // duplicates do not make a fourth statement

		before := d.Selects(t)
		got, err := src.Load(context.Background(), keys)
		if err != nil {
			t.Fatal(err)
		}
		if n := d.Selects(t) - before; n != 3 {
			t.Errorf("1200 keys with WithMaxBatch(500): %d SELECTs at the server, want 3", n)
		}
		if len(got) != 1200 || string(got["1200"]) != "v1200" || string(got["1"]) != "v1" {
			t.Errorf("got %d values, [1] = %q, [1200] = %q", len(got), got["1"], got["1200"])
		}
		if st := src.Stats(); st.Statements != 3 || st.Keys != 1200 || st.Rows != 1200 || st.Loads != 1 {
			t.Errorf("stats %+v, want 3 statements, 1200 keys, 1200 rows, 1 load", st)
		}
	})
}

func TestLoadKeyColumns(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, d *testenv.Database, db *sql.DB, opts ...sqlload.Option) {
		exec(t, db,
			"CREATE TABLE by_int (id BIGINT UNSIGNED PRIMARY KEY, v TEXT)",
			"INSERT INTO by_int VALUES (42, 'int'), (18446744073709551615, 'max')",
			"CREATE TABLE by_varchar (k VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci PRIMARY KEY, v TEXT)",
			"INSERT INTO by_varchar VALUES ('ABC', 'upper'), ('héllo wörld ✓', 'utf8')",
			"CREATE TABLE by_binary (k VARBINARY(100) PRIMARY KEY, v BLOB)",
			"INSERT INTO by_binary VALUES (X'6E756C00627974650A', 'nul'), (X'FFFE80', 'not utf8'), ('ключ', 'utf8'), ('', 'empty key')",
		)
		tests := []struct {
			name, query string
			keys        []string
			want        map[string]string
			ignored     int64
		}{
			{"INT", "SELECT id, v FROM by_int WHERE id IN (?)",
				[]string{"42", "18446744073709551615", "7"},
				map[string]string{"42": "int", "18446744073709551615": "max"}, 0},
			{"VARCHAR", "SELECT k, v FROM by_varchar WHERE k IN (?)",
				[]string{"ABC", "héllo wörld ✓"},
				map[string]string{"ABC": "upper", "héllo wörld ✓": "utf8"}, 0},
			{"VARCHAR case-insensitive match is ignored", "SELECT k, v FROM by_varchar WHERE k IN (?)",
				[]string{"abc"}, map[string]string{}, 1},
			{"VARBINARY with NUL, newline, invalid UTF-8", "SELECT k, v FROM by_binary WHERE k IN (?)",
				[]string{"nul\x00byte\n", "\xff\xfe\x80", "ключ", "", "nul"},
				map[string]string{"nul\x00byte\n": "nul", "\xff\xfe\x80": "not utf8", "ключ": "utf8", "": "empty key"}, 0},
		}
		for _, tt := range tests {
			src, err := sqlload.New(db, tt.query, opts...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := src.Load(context.Background(), tt.keys)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if len(got) != len(tt.want) {
				t.Errorf("%s: Load(%q) = %q, want %q", tt.name, tt.keys, got, tt.want)
			}
			for k, v := range tt.want {
				if string(got[k]) != v {
					t.Errorf("%s: [%q] = %q, want %q", tt.name, k, got[k], v)
				}
			}
			if st := src.Stats(); st.Ignored != tt.ignored {
				t.Errorf("%s: %d rows ignored, want %d", tt.name, st.Ignored, tt.ignored)
			}
		}
	})
}

func TestLoadContext(t *testing.T) {
	t.Parallel()
	d := testenv.MySQL(t)
	exec(t, d.DB, "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES (1, 'a')")
	src, err := sqlload.New(d.DB, "SELECT k, v FROM t WHERE k IN (?)")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := d.Selects(t)
	_, err = src.Load(ctx, []string{"1"})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, sqlload.ErrSource) {
		t.Fatalf("canceled context: err = %v, want context.Canceled and ErrSource", err)
	}
	if n := d.Selects(t) - before; n != 0 {
		t.Errorf("canceled context: %d SELECTs reached the server", n)
	}

	slow, err := sqlload.New(d.DB, "SELECT k, v FROM t WHERE k IN (?) AND SLEEP(10) = 0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = slow.Load(ctx, []string{"1"})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, sqlload.ErrSource) {
		t.Fatalf("deadline during the query: err = %v, want context.DeadlineExceeded and ErrSource", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Load returned %v after its deadline", elapsed)
	}
	if st := slow.Stats(); st.Errors != 1 {
		t.Errorf("stats %+v, want 1 error", st)
	}
}

func TestLoadDatabaseErrors(t *testing.T) {
	t.Parallel()
	d := testenv.MySQL(t)
	exec(t, d.DB, "CREATE TABLE t (k INT PRIMARY KEY, v TEXT, w TEXT)")

	src, err := sqlload.New(d.DB, "SELECT k, v FROM missing_table WHERE k IN (?)")
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Load(context.Background(), []string{"1"})
	var mysqlErr *mysql.MySQLError
	if !errors.Is(err, sqlload.ErrSource) || !errors.As(err, &mysqlErr) || mysqlErr.Number != 1146 {
		t.Errorf("missing table: err = %v, want ErrSource wrapping MySQL error 1146", err)
	}

	src, err = sqlload.New(d.DB, "SELECT k, v, w FROM t WHERE k IN (?)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Load(context.Background(), []string{"1"}); !errors.Is(err, sqlload.ErrBadQuery) {
		t.Errorf("three columns: err = %v, want ErrBadQuery", err)
	}
}

func TestLoadServerStopped(t *testing.T) {
	t.Parallel()
	server := testenv.PrivateMySQL(t)
	d := server.Database(t)
	exec(t, d.DB, "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)", "INSERT INTO t VALUES (1, 'a')")
	src, err := sqlload.New(d.DB, "SELECT k, v FROM t WHERE k IN (?)")
	if err != nil {
		t.Fatal(err)
	}
	server.Stop()
	if _, err := src.Load(context.Background(), []string{"1"}); !errors.Is(err, sqlload.ErrSource) {
		t.Fatalf("server stopped: err = %v, want ErrSource", err)
	}
	server.Start()
	got, err := src.Load(context.Background(), []string{"1"})
	if err != nil || string(got["1"]) != "a" {
		t.Fatalf("after restart: %q, %v", got, err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	d := testenv.MySQL(t)
	tests := []struct {
		name  string
		query string
		opts  []sqlload.Option
		isBad bool // wraps ErrBadQuery
	}{
		{"no IN list", "SELECT k, v FROM t WHERE k = ?", nil, true},
		{"two IN lists", "SELECT k, v FROM t WHERE k IN (?) OR j IN (?)", nil, true},
		{"extra placeholder", "SELECT k, v FROM t WHERE k IN (?) AND tenant = ?", nil, true},
		{"empty", "", nil, true},
		{"max batch 0", "SELECT k, v FROM t WHERE k IN (?)", []sqlload.Option{sqlload.WithMaxBatch(0)}, false},
		{"max batch over the placeholder limit", "SELECT k, v FROM t WHERE k IN (?)", []sqlload.Option{sqlload.WithMaxBatch(65536)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := d.Selects(t)
			src, err := sqlload.New(d.DB, tt.query, tt.opts...)
			if err == nil || src != nil {
				t.Fatalf("New = %v, %v; want an error", src, err)
			}
			if errors.Is(err, sqlload.ErrBadQuery) != tt.isBad {
				t.Errorf("err = %v; wraps ErrBadQuery: %v, want %v", err, !tt.isBad, tt.isBad)
			}
			if n := d.Selects(t) - before; n != 0 {
				t.Errorf("New ran %d SELECTs; want no I/O", n)
			}
		})
	}
	if _, err := sqlload.New(nil, "SELECT k, v FROM t WHERE k IN (?)"); err == nil {
		t.Error("New(nil db) succeeded")
	}
}

// BenchmarkLoad compares the modes on 100-byte values over the unix socket:
//
//	make bench PKGS=./loader/sqlload BENCH=Load BENCHCOUNT=10 | tee new.txt
func BenchmarkLoad(b *testing.B) {
	d := testenv.MySQL(b)
	exec(b, d.DB, "CREATE TABLE t (k VARCHAR(20) PRIMARY KEY, v VARBINARY(200))",
		"INSERT INTO t SELECT seq, REPEAT('x', 100) FROM seq_1_to_1000")
	for _, m := range modes {
		src, err := sqlload.New(openDB(b, d, m.interpolate), "SELECT k, v FROM t WHERE k IN (?)", m.opts...)
		if err != nil {
			b.Fatal(err)
		}
		defer src.Close()
		for _, n := range []int{1, 100} {
			keys := make([]string, n)
			for i := range keys {
				keys[i] = strconv.Itoa(i*7%1000 + 1)
			}
			b.Run(fmt.Sprintf("keys=%d/%s", n, m.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := src.Load(context.Background(), keys); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// A statement whose context ends while it runs is stopped at the server,
// not left running there: the server's process list no longer shows it.
func TestLoadKilledAtTheServer(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, d *testenv.Database, db *sql.DB, opts ...sqlload.Option) {
		exec(t, db, "CREATE TABLE t (k INT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
		marker := "slow_" + strings.ReplaceAll(t.Name(), "/", "_")
		src, err := sqlload.New(db, "SELECT k, SLEEP(30) AS "+marker+" FROM t WHERE k IN (?)", opts...)
		if err != nil {
			t.Fatal(err)
		}
		running := func() int {
			var n int
			err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()", "%"+marker+"%").Scan(&n)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			_, err := src.Load(ctx, []string{"1"})
			done <- err
		}()
		waitFor(t, func() bool { return running() == 1 })
		cancel()
		if err := <-done; !errors.Is(err, sqlload.ErrSource) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Load = %v, want ErrSource and context.Canceled", err)
		}
		waitFor(t, func() bool { return running() == 0 })
		if st := src.Stats(); st.Kills != 1 || st.KillErrors != 0 {
			t.Fatalf("stats %+v, want one kill", st)
		}
		if got, err := sqlload.New(db, "SELECT k, k FROM t WHERE k IN (?)", opts...); err != nil {
			t.Fatal(err)
		} else if m, err := got.Load(context.Background(), []string{"1"}); err != nil || string(m["1"]) != "1" {
			t.Fatalf("Load after a kill = %q, %v", m, err)
		}
	})
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline; it times nothing.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
