// Package testenv gives tests real servers: memcached, MariaDB and
// nutcracker (twemproxy), each bound to 127.0.0.1 or a unix socket, on a
// private port and a throwaway directory, and stopped when the test ends.
//
// # Basics
//
// Memcached starts a private memcached process per call, so a test may kill,
// restart or freeze it (SIGSTOP) without disturbing any other test:
//
//	mc := testenv.Memcached(t)
//	client := memcache.New(mc.Addr)
//	mc.Restart() // same port, fresh empty process
//
// MySQL creates a fresh database, and an account of the same name that owns
// it, on a shared MariaDB server. Database.Selects counts, at the server, the
// SELECT statements that account has run:
//
//	db := testenv.MySQL(t)
//	before := db.Selects(t)
//	... code under test queries db.DB ...
//	if n := db.Selects(t) - before; n != 1 { t.Fatalf("%d SELECTs, want 1", n) }
//
// The shared server is the one TIERCACHE_MYSQL_DSN names (scripts/services.sh
// starts it and prints that variable; `make test` does both). When the
// variable is unset, the first MySQL call of the test binary starts a private
// mariadbd on a unix socket in a temporary directory. A package whose tests
// use MySQL should stop that server at the end through TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Without it the server is still killed when the test binary exits (Linux
// parent-death signal), but its directory stays in os.TempDir until the next
// test binary that starts one removes it.
//
// PrivateMySQL starts a dedicated mariadbd, which a test may stop and start
// again; it takes under a second (mariadb-install-db plus start).
//
// Nutcracker runs twemproxy with the YAML configuration it is given.
//
// # Caveats
//
// A missing server binary fails the test with instructions rather than
// skipping it: the read path must be tested against real servers. Run the
// tests with `make test`, or once `bash scripts/services.sh start`, which
// installs the Debian packages memcached, mariadb-server, mariadb-client and
// nutcracker.
//
// Server methods that take no testing.TB (Kill, Restart, Stop, Start...)
// report failures through the testing.TB the server was created with, so they
// must be called from the goroutine running that test, like t.Fatal.
//
// Every started process is reaped by a goroutine of this package, and each
// *sql.DB runs goroutines of database/sql; a test that checks for leaked
// goroutines should take its baseline after creating its servers.
package testenv
