package sqlload_test

import (
	"database/sql"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/tiercache/tiercache/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// openDB opens d's database with interpolateParams set: true sends each
// query as text, false as a server-side prepared statement.
func openDB(t testing.TB, d *testenv.Database, interpolateParams bool) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(d.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.InterpolateParams = interpolateParams
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// exec runs statements on db, failing the test on the first error.
func exec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, stmt := range stmts {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}
