package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DSNEnv names the variable holding the DSN of the MariaDB that MySQL uses,
// an account allowed to create databases and accounts and to SET GLOBAL.
// scripts/services.sh env prints it.
const DSNEnv = "TIERCACHE_MYSQL_DSN"

// Database is a throwaway database and the account that owns it, which has
// the same name and password and no privileges elsewhere. It is safe for
// concurrent use.
type Database struct {
	// DB is connected as the database's account with the database as
	// default schema.
	DB *sql.DB
	// DSN is what DB was opened with (parseTime=true), for tests that open
	// connections of their own, with other parameters for example.
	DSN string
	// Name is the name of both the database and its account.
	Name string

	admin     *admin
	closeOnce sync.Once
	closeErr  error
}

// MySQL creates a fresh database on the shared MariaDB server and drops it
// when the test ends. The server is the one TIERCACHE_MYSQL_DSN names or,
// when that is unset, a private one started on first use; see the package
// documentation.
func MySQL(t testing.TB) *Database {
	t.Helper()
	a, err := sharedAdmin()
	if err != nil {
		t.Fatal(err)
	}
	return a.databaseFor(t)
}

// NewDatabase is MySQL for code that has no testing.TB, such as an Example
// or TestMain. The caller closes the Database; Main drops those left open.
func NewDatabase() (*Database, error) {
	a, err := sharedAdmin()
	if err != nil {
		return nil, err
	}
	return a.createDatabase("x")
}

// Selects returns how many SELECT statements the database's account has
// run, as counted by the server: information_schema.USER_STATISTICS,
// which, unlike performance_schema's digest summary, also counts prepared
// statements executed through the binary protocol. Take the difference
// between two calls. Statements still running are waited for (up to two
// seconds) so that a statement whose result the client has read is always
// counted.
func (d *Database) Selects(t testing.TB) int64 {
	t.Helper()
	n, err := d.admin.selects(d.Name)
	if err != nil {
		t.Fatalf("testenv: count SELECTs of %s: %v", d.Name, err)
	}
	return n
}

// Close closes DB, ends the account's other connections and drops the
// database and the account. Calling it again does nothing.
func (d *Database) Close() error {
	d.closeOnce.Do(func() {
		d.DB.Close()
		d.closeErr = d.admin.drop(d.Name)
		openDatabases.Delete(d)
	})
	return d.closeErr
}

// admin is an all-privileges connection to a MariaDB server, used to create
// databases and to read counters.
type admin struct {
	cfg *mysql.Config
	db  *sql.DB
}

func openAdmin(dsn string) (*admin, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("testenv: parse MariaDB DSN: %w", err)
	}
	cfg.DBName = ""
	cfg.ParseTime = true
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("testenv: MariaDB DSN: %w", err)
	}
	db := sql.OpenDB(connector)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("testenv: connect to MariaDB %s(%s): %w", cfg.Net, cfg.Addr, err)
	}
	// Selects reads the per-account counters of userstat.
	if _, err := db.ExecContext(ctx, "SET GLOBAL userstat = 1"); err != nil {
		db.Close()
		return nil, fmt.Errorf("testenv: enable userstat on MariaDB (the account needs SUPER): %w", err)
	}
	return &admin{cfg: cfg, db: db}, nil
}

// databaseFor creates a database named after the test and drops it when the
// test ends.
func (a *admin) databaseFor(t testing.TB) *Database {
	t.Helper()
	d, err := a.createDatabase(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Logf("testenv: %v", err)
		}
	})
	return d
}

// openDatabases holds every Database not closed yet, for Main.
var openDatabases sync.Map // *Database → struct{}

func (a *admin) createDatabase(hint string) (*Database, error) {
	name := databaseName(hint)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Name is made of [a-z0-9_] only, so it needs no escaping.
	stmts := []string{
		"CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4",
		"CREATE USER '" + name + "'@'localhost' IDENTIFIED BY '" + name + "', '" +
			name + "'@'%' IDENTIFIED BY '" + name + "'",
		"GRANT ALL PRIVILEGES ON `" + name + "`.* TO '" + name + "'@'localhost', '" + name + "'@'%'",
	}
	for _, stmt := range stmts {
		if _, err := a.db.ExecContext(ctx, stmt); err != nil {
			a.drop(name)
			return nil, fmt.Errorf("testenv: create database %s: %w", name, err)
		}
	}
	cfg := a.cfg.Clone()
	cfg.User, cfg.Passwd, cfg.DBName = name, name, name
	d := &Database{DSN: cfg.FormatDSN(), Name: name, admin: a}
	db, err := sql.Open("mysql", d.DSN)
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		a.drop(name)
		return nil, fmt.Errorf("testenv: connect to database %s: %w", name, err)
	}
	d.DB = db
	openDatabases.Store(d, struct{}{})
	return d, nil
}

// databaseName returns "tc_", up to 20 characters of hint reduced to
// [a-z0-9_], and a random suffix; 32 characters at most.
func databaseName(hint string) string {
	var b strings.Builder
	b.WriteString("tc_")
	for _, r := range strings.ToLower(hint) {
		if b.Len() == 23 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	suffix := make([]byte, 4)
	rand.Read(suffix)
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(suffix))
	return b.String()
}

func (a *admin) drop(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A connection left in a transaction would hold DROP DATABASE on a
	// metadata lock; end the account's connections first.
	rows, err := a.db.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", name)
	if err != nil {
		return fmt.Errorf("drop database %s: list connections: %w", name, err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("drop database %s: list connections: %w", name, err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		a.db.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id)) // it may have gone already
	}
	if _, err := a.db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := a.db.ExecContext(ctx, "DROP USER IF EXISTS '"+name+"'@'localhost', '"+name+"'@'%'"); err != nil {
		return fmt.Errorf("drop account %s: %w", name, err)
	}
	return nil
}

// selects reads SELECT_COMMANDS of the account from USER_STATISTICS.
//
// The server sends a statement's last packet before it adds the statement to
// USER_STATISTICS, and only after that marks the connection idle ("Sleep" in
// the process list). So once none of the account's connections is busy, the
// count includes every statement whose result the client has seen.
func (a *admin) selects(user string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		var busy int
		err := a.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST "+
			"WHERE USER = ? AND COMMAND <> 'Sleep'", user).Scan(&busy)
		if err != nil {
			return 0, err
		}
		if busy == 0 {
			break
		}
	}
	var n int64
	err := a.db.QueryRowContext(ctx, "SELECT COALESCE(SUM(SELECT_COMMANDS), 0) "+
		"FROM information_schema.USER_STATISTICS WHERE USER = ?", user).Scan(&n)
	return n, err
}

// shared is the server MySQL and NewDatabase use, set up on first use.
var shared struct {
	once   sync.Once
	admin  *admin
	server *mariadb // nil when TIERCACHE_MYSQL_DSN names the server
	err    error
}

func sharedAdmin() (*admin, error) {
	shared.once.Do(func() {
		if dsn := os.Getenv(DSNEnv); dsn != "" {
			shared.admin, shared.err = openAdmin(dsn)
			if shared.err != nil {
				shared.err = fmt.Errorf("%w\n(%s is set; is the server running? `bash scripts/services.sh start`)", shared.err, DSNEnv)
			}
			return
		}
		shared.server, shared.err = newMariaDB()
		if shared.err != nil {
			return
		}
		shared.admin, shared.err = openAdmin(shared.server.dsn)
		if shared.err != nil {
			shared.server.destroy()
			shared.server = nil
		}
	})
	return shared.admin, shared.err
}
