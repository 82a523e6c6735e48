package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mariadbStartTimeout bounds how long a mariadbd may take to accept
// connections. It only guards against a server that never starts: on a
// machine loaded by several test runs at once a start has taken over a
// minute.
const mariadbStartTimeout = 3 * time.Minute

// tempDirPrefix names the directories of the private servers in
// os.TempDir, so that those of dead test binaries can be found and removed.
const tempDirPrefix = "tiercache-mariadb-"

// mariadb is a mariadbd started by this package: its own data directory,
// reachable only through a unix socket (no TCP port to collide on), with the
// account tiercache/tiercache holding every privilege.
type mariadb struct {
	dir    string // data/, the socket, the init file, the logs
	socket string
	dsn    string // the tiercache account, no default schema
	bin    string

	mu   sync.Mutex
	proc *process // nil while stopped
}

// initSQL runs at every start of a private server, with full privileges.
const initSQL = `CREATE USER IF NOT EXISTS 'tiercache'@'localhost' IDENTIFIED BY 'tiercache';
GRANT ALL PRIVILEGES ON *.* TO 'tiercache'@'localhost' WITH GRANT OPTION;
`

// newMariaDB creates a data directory and starts mariadbd on it.
func newMariaDB() (*mariadb, error) {
	bin, err := findBinary("mariadbd", "mysqld")
	if err != nil {
		return nil, err
	}
	installDB, err := findBinary("mariadb-install-db", "mysql_install_db")
	if err != nil {
		return nil, err
	}
	removeStaleDirs()
	// A socket path must fit in 108 bytes; a long TMPDIR would not leave room.
	base := os.TempDir()
	if len(base) > 60 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, tempDirPrefix)
	if err != nil {
		return nil, fmt.Errorf("testenv: mariadb: %w", err)
	}
	m := &mariadb{dir: dir, socket: filepath.Join(dir, "mysqld.sock"), bin: bin}
	m.dsn = "tiercache:tiercache@unix(" + m.socket + ")/?parseTime=true"
	if err := m.install(installDB); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := m.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return m, nil
}

// install fills m.dir: the owner's pid for removeStaleDirs, a tmpdir, the
// data directory and the init file.
func (m *mariadb) install(installDB string) error {
	if err := os.WriteFile(filepath.Join(m.dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("testenv: mariadb: %w", err)
	}
	// Every server gets its own tmpdir: a mariadbd deletes the #sql* files
	// in its tmpdir when it starts, which breaks any other server or
	// mariadb-install-db using them at that moment.
	if err := os.Mkdir(filepath.Join(m.dir, "tmp"), 0o700); err != nil {
		return fmt.Errorf("testenv: mariadb: %w", err)
	}
	args := []string{"--no-defaults",
		"--datadir=" + filepath.Join(m.dir, "data"),
		"--tmpdir=" + filepath.Join(m.dir, "tmp"),
		"--auth-root-authentication-method=socket", "--skip-test-db",
		"--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M"}
	args = append(args, rootUser()...)
	if out, err := exec.Command(installDB, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("testenv: mariadb-install-db: %w\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(m.dir, "init.sql"), []byte(initSQL), 0o644); err != nil {
		return fmt.Errorf("testenv: mariadb: %w", err)
	}
	return nil
}

// rootUser is the --user option mariadbd needs to run as root.
func rootUser() []string {
	if os.Geteuid() == 0 {
		return []string{"--user=root"}
	}
	return nil
}

func (m *mariadb) start() error {
	m.mu.Lock()
	running := m.proc != nil
	m.mu.Unlock()
	if running {
		return nil
	}
	args := []string{"--no-defaults", // my.cnf belongs to the system's server
		"--datadir=" + filepath.Join(m.dir, "data"),
		"--tmpdir=" + filepath.Join(m.dir, "tmp"),
		"--socket=" + m.socket,
		"--pid-file=" + filepath.Join(m.dir, "mysqld.pid"),
		"--skip-networking",
		"--log-error=" + filepath.Join(m.dir, "error.log"),
		"--init-file=" + filepath.Join(m.dir, "init.sql"),
		"--performance-schema=ON",
		"--userstat=1",
		"--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
		"--max-connections=1000",
		"--skip-log-bin", "--skip-name-resolve",
		"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=8M",
		"--innodb-flush-log-at-trx-commit=2",
		// Many test binaries each running a server could exhaust the
		// kernel's AIO contexts (fs.aio-max-nr).
		"--innodb-use-native-aio=OFF",
	}
	args = append(args, rootUser()...)
	proc, err := startProcess("mariadbd", filepath.Join(m.dir, "mariadbd.out"), m.bin, args...)
	if err != nil {
		return err
	}
	// Errors go to error.log, so quote that one on failure.
	proc.logPath = filepath.Join(m.dir, "error.log")
	db, err := sql.Open("mysql", m.dsn)
	if err != nil {
		proc.kill()
		return fmt.Errorf("testenv: mariadb: %w", err)
	}
	defer db.Close()
	err = proc.waitReady(mariadbStartTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return db.PingContext(ctx)
	})
	if err != nil {
		proc.kill()
		return err
	}
	m.mu.Lock()
	m.proc = proc
	m.mu.Unlock()
	return nil
}

// stop shuts the server down cleanly (SIGTERM) and waits until it is gone.
func (m *mariadb) stop() error {
	m.mu.Lock()
	proc := m.proc
	m.proc = nil
	m.mu.Unlock()
	if proc == nil {
		return nil
	}
	return proc.terminate(30 * time.Second)
}

func (m *mariadb) pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil || m.proc.exited() {
		return 0
	}
	return m.proc.pid()
}

// destroy kills the server and removes its directory.
func (m *mariadb) destroy() error {
	m.mu.Lock()
	proc := m.proc
	m.proc = nil
	m.mu.Unlock()
	if proc != nil {
		proc.kill()
	}
	return os.RemoveAll(m.dir)
}

// removeStaleDirs removes the directories of private servers whose test
// binary has died without cleaning up (a timeout, a kill, no TestMain). The
// parent-death signal has already killed those servers.
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempDirPrefix+"*"))
	tmpDirs, _ := filepath.Glob(filepath.Join("/tmp", tempDirPrefix+"*"))
	for _, dir := range append(dirs, tmpDirs...) {
		owner, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue // being created, or not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(owner)))
		if err != nil || pid <= 0 {
			continue
		}
		if !processAlive(pid) {
			os.RemoveAll(dir)
		}
	}
}

// processAlive reports whether pid runs. A zombie does not: in a container
// the reaper of orphans may take seconds to collect a dead test binary.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	return err != nil || !strings.Contains(string(status), "\nState:\tZ")
}

// MySQLServer is a dedicated mariadbd for one test, for tests that stop the
// database. Use MySQL for everything else: it is much cheaper.
type MySQLServer struct {
	// DSN logs in as an account with every privilege, over the unix
	// socket, with no default schema.
	DSN string
	// Socket is the server's unix socket; it has no TCP port.
	Socket string

	t      testing.TB
	server *mariadb
	admin  *admin
}

// PrivateMySQL starts a mariadbd of the test's own (about a second) and
// destroys it, data included, when the test ends.
func PrivateMySQL(t testing.TB) *MySQLServer {
	t.Helper()
	server, err := newMariaDB()
	if err != nil {
		t.Fatal(err)
	}
	a, err := openAdmin(server.dsn)
	if err != nil {
		server.destroy()
		t.Fatal(err)
	}
	s := &MySQLServer{DSN: server.dsn, Socket: server.socket, t: t, server: server, admin: a}
	t.Cleanup(func() {
		a.db.Close()
		if err := server.destroy(); err != nil {
			t.Logf("testenv: remove private MariaDB: %v", err)
		}
	})
	return s
}

// Database creates a fresh database on this server; see MySQL.
func (s *MySQLServer) Database(t testing.TB) *Database {
	t.Helper()
	return s.admin.databaseFor(t)
}

// Stop shuts the server down and waits until it has exited: clients get
// errors (no such socket) until Start.
func (s *MySQLServer) Stop() {
	s.t.Helper()
	if err := s.server.stop(); err != nil {
		s.t.Fatal(err)
	}
}

// Start starts a stopped server again on the same data and socket, and
// returns once it accepts connections. Existing *sql.DB handles reconnect.
func (s *MySQLServer) Start() {
	s.t.Helper()
	if err := s.server.start(); err != nil {
		s.t.Fatal(err)
	}
}

// PID returns the process id of the server, or 0 while it is stopped.
func (s *MySQLServer) PID() int { return s.server.pid() }
