package testenv

import (
	"context"
	"database/sql"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestMySQLCreatesFreshDatabases(t *testing.T) {
	t.Parallel()
	a, b := MySQL(t), MySQL(t)
	if a.Name == b.Name {
		t.Fatalf("two calls gave the same database %s", a.Name)
	}
	var current string
	if err := a.DB.QueryRow("SELECT DATABASE()").Scan(&current); err != nil {
		t.Fatal(err)
	}
	if current != a.Name {
		t.Fatalf("default schema %q, want %q", current, a.Name)
	}
	if _, err := a.DB.Exec("CREATE TABLE t (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DB.Exec("SELECT * FROM " + a.Name + ".t"); err == nil {
		t.Error("one database's account can read another's tables")
	}
}

func TestDatabaseCloseDropsEverything(t *testing.T) {
	t.Parallel()
	d, err := NewDatabase()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var n int
	err = d.admin.db.QueryRow("SELECT (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?)"+
		" + (SELECT COUNT(*) FROM mysql.user WHERE User = ?)", d.Name, d.Name).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database or account %s still there after Close", d.Name)
	}
}

// TestSelectsCountsAtTheServer checks the one thing Selects exists for:
// every SELECT counts exactly once, whether go-sql-driver/mysql sends it as
// text (interpolateParams=true) or as a server-side prepared statement.
func TestSelectsCountsAtTheServer(t *testing.T) {
	t.Parallel()
	d := MySQL(t)
	if _, err := d.DB.Exec("CREATE TABLE t (id INT PRIMARY KEY, body VARBINARY(10))"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DB.Exec("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')"); err != nil {
		t.Fatal(err)
	}
	for _, interpolate := range []bool{false, true} {
		cfg, err := mysql.ParseDSN(d.DSN)
		if err != nil {
			t.Fatal(err)
		}
		cfg.InterpolateParams = interpolate
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()

		tests := []struct {
			name string
			run  func() error
			want int64
		}{
			{"query with args", func() error {
				var body []byte
				return db.QueryRow("SELECT body FROM t WHERE id = ?", 2).Scan(&body)
			}, 1},
			{"IN list", func() error {
				rows, err := db.QueryContext(context.Background(), "SELECT id, body FROM t WHERE id IN (?, ?, ?)", "1", "2", "3")
				if err != nil {
					return err
				}
				for rows.Next() {
				}
				rows.Close()
				return rows.Err()
			}, 1},
			{"prepared twice", func() error {
				stmt, err := db.Prepare("SELECT body FROM t WHERE id = ?")
				if err != nil {
					return err
				}
				defer stmt.Close()
				var body []byte
				for _, id := range []int{1, 3} {
					if err := stmt.QueryRow(id).Scan(&body); err != nil {
						return err
					}
				}
				return nil
			}, 2},
			{"no args", func() error {
				var n int
				return db.QueryRow("SELECT COUNT(*) FROM t").Scan(&n)
			}, 1},
			{"insert", func() error {
				_, err := db.Exec("INSERT INTO t VALUES (?, ?) ON DUPLICATE KEY UPDATE body = VALUES(body)", 9, "z")
				return err
			}, 0},
		}
		for _, tt := range tests {
			before := d.Selects(t)
			if err := tt.run(); err != nil {
				t.Fatalf("interpolateParams=%v, %s: %v", interpolate, tt.name, err)
			}
			if got := d.Selects(t) - before; got != tt.want {
				t.Errorf("interpolateParams=%v, %s: Selects went up by %d, want %d", interpolate, tt.name, got, tt.want)
			}
		}
	}
}

func TestPrivateMySQLStopStart(t *testing.T) {
	t.Parallel()
	server := PrivateMySQL(t)
	d := server.Database(t)
	if _, err := d.DB.Exec("CREATE TABLE t (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DB.Exec("INSERT INTO t VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	pid := server.PID()
	server.Stop()
	if server.PID() != 0 {
		t.Errorf("PID = %d after Stop", server.PID())
	}
	var id int
	if err := d.DB.QueryRow("SELECT id FROM t").Scan(&id); err == nil {
		t.Fatal("query succeeded while the server was stopped")
	}
	server.Start()
	if server.PID() == pid || server.PID() == 0 {
		t.Errorf("PID %d after Start, was %d", server.PID(), pid)
	}
	if err := d.DB.QueryRow("SELECT id FROM t").Scan(&id); err != nil || id != 7 {
		t.Fatalf("after Start: id %d, err %v; want 7 and the data kept", id, err)
	}
}
