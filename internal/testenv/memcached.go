package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MemcachedServer is a private memcached process owned by one test. Its
// methods are safe for concurrent use, but those that can fail call t.Fatal
// and so belong on the test's goroutine.
type MemcachedServer struct {
	// Addr is 127.0.0.1:port, or another loopback address with
	// WithLoopbackPort. It stays the same across Restart.
	Addr string

	t    testing.TB
	path string
	args []string // everything but -p
	dir  string

	mu   sync.Mutex
	proc *process // nil until started
}

// MemcachedOption configures Memcached.
type MemcachedOption func(*memcachedConfig)

type memcachedConfig struct {
	itemSize int // bytes, 0 for memcached's default of 1 MiB
	threads  int
	memoryMB int
	extra    []string
	port     int // 0 for a free port on 127.0.0.1
}

// WithItemSize sets the largest item memcached accepts, in bytes (-I).
// memcached refuses sizes under 1 KiB or over half the memory limit. Below
// 1 MiB the slab chunk size is lowered to match (-o slab_chunk_max).
func WithItemSize(bytes int) MemcachedOption {
	return func(c *memcachedConfig) { c.itemSize = bytes }
}

// WithThreads sets the number of worker threads (-t); the default is 1,
// which keeps latency comparable between connections.
func WithThreads(n int) MemcachedOption {
	return func(c *memcachedConfig) { c.threads = n }
}

// WithMemoryMB sets the cache size in megabytes (-m); the default is 64.
func WithMemoryMB(mb int) MemcachedOption {
	return func(c *memcachedConfig) { c.memoryMB = mb }
}

// WithArgs appends raw command-line arguments, for settings the other
// options do not cover (for example "-c", "8" to limit connections).
func WithArgs(args ...string) MemcachedOption {
	return func(c *memcachedConfig) { c.extra = append(c.extra, args...) }
}

// WithLoopbackPort starts memcached on the given port of a loopback address
// of its own, 127.x.y.z picked at random, rather than on a free port of
// 127.0.0.1: for tests that need a fixed port, such as memcached's default
// 11211, which twemproxy names servers by differently, without colliding
// with a memcached that may already serve 127.0.0.1:11211.
func WithLoopbackPort(port int) MemcachedOption {
	return func(c *memcachedConfig) { c.port = port }
}

// Memcached starts a private memcached on 127.0.0.1 and a free port:
//
//	memcached -l 127.0.0.1 -p PORT -U 0 -t 1 -m 64 [-I SIZE]
//
// It returns once the server answers, and kills it when the test ends. A
// missing memcached binary fails the test.
func Memcached(t testing.TB, opts ...MemcachedOption) *MemcachedServer {
	t.Helper()
	cfg := memcachedConfig{threads: 1, memoryMB: 64}
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.threads < 1 || cfg.memoryMB < 1 || cfg.itemSize < 0 || cfg.port < 0 || cfg.port > 65535 {
		t.Fatalf("testenv: Memcached: bad options: %d threads, %d MB, item size %d, port %d",
			cfg.threads, cfg.memoryMB, cfg.itemSize, cfg.port)
	}
	path, err := findBinary("memcached")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-U", "0",
		"-t", strconv.Itoa(cfg.threads), "-m", strconv.Itoa(cfg.memoryMB)}
	if cfg.itemSize > 0 {
		args = append(args, "-I", strconv.Itoa(cfg.itemSize))
		if cfg.itemSize < 1<<20 {
			// memcached refuses an item size below its slab chunk size
			// (512 KiB by default); half the item size is its own ratio.
			args = append(args, "-o", "slab_chunk_max="+strconv.Itoa(cfg.itemSize/2))
		}
	}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses to run as root otherwise
	}
	args = append(args, cfg.extra...)
	s := &MemcachedServer{t: t, path: path, args: args, dir: t.TempDir()}
	t.Cleanup(s.Kill)

	for attempt := 1; ; attempt++ {
		host, port := "127.0.0.1", cfg.port
		if port == 0 {
			if port, err = freePort(); err != nil {
				t.Fatal(err)
			}
		} else {
			host = fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), rand.IntN(256), 1+rand.IntN(254))
		}
		s.Addr = net.JoinHostPort(host, strconv.Itoa(port))
		err = s.start()
		if err == nil {
			return s
		}
		if !errors.Is(err, errAddrInUse) || attempt == 5 {
			t.Fatal(err)
		}
	}
}

func (s *MemcachedServer) start() error {
	host, port, _ := net.SplitHostPort(s.Addr)
	args := append([]string{"-l", host, "-p", port}, s.args...)
	proc, err := startProcess("memcached", filepath.Join(s.dir, "memcached-"+port+".log"), s.path, args...)
	if err != nil {
		return err
	}
	if err := proc.waitReady(10*time.Second, s.ping); err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = proc
	s.mu.Unlock()
	return nil
}

// ping asks the server for its version.
func (s *MemcachedServer) ping() error {
	conn, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("version\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "VERSION ") {
		return fmt.Errorf("unexpected reply to version: %q", line)
	}
	return nil
}

// Stat returns the value of one of the server's general statistics
// ("stats"), such as total_connections, as the server reports it. The
// query opens a connection of its own, which total_connections counts.
// A failure fails the test.
func (s *MemcachedServer) Stat(name string) string {
	s.t.Helper()
	conn, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		s.t.Fatalf("testenv: memcached stats: %v", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		s.t.Fatal(err)
	}
	if _, err := conn.Write([]byte("stats\r\n")); err != nil {
		s.t.Fatalf("testenv: memcached stats: %v", err)
	}
	r := bufio.NewReader(conn)
	value := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("testenv: memcached stats: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "END" {
			break
		}
		if v, ok := strings.CutPrefix(line, "STAT "+name+" "); ok {
			value = v
		}
	}
	if value == "" {
		s.t.Fatalf("testenv: memcached has no statistic %q", name)
	}
	return value
}

// PID returns the process id of the running server, or 0 after Kill.
func (s *MemcachedServer) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return 0
	}
	return s.proc.pid()
}

// Kill kills the server with SIGKILL and waits until it has exited. Its
// clients see their connections reset and new ones refused. Killing a killed
// server does nothing.
func (s *MemcachedServer) Kill() {
	s.mu.Lock()
	proc := s.proc
	s.proc = nil
	s.mu.Unlock()
	if proc != nil {
		proc.kill()
	}
}

// Restart kills the server if it runs and starts a new, empty one on the
// same port: a different process, every item gone. It also brings back a
// killed server.
func (s *MemcachedServer) Restart() {
	s.t.Helper()
	s.Kill()
	// The port is free again once the old process is gone, unless some
	// other process grabbed it meanwhile; wait a little for it then.
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err = s.start()
		if err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			break
		}
	}
	s.t.Fatalf("testenv: restart memcached on %s: %v", s.Addr, err)
}

// Stop freezes the server with SIGSTOP, as a hung node: connections are
// still accepted by the kernel but nothing answers. Cont resumes it.
//
// SIGSTOP is delivered asynchronously, and a request a worker thread reads
// before it lands is still answered; so where /proc shows thread states
// (Linux), Stop returns only once the kernel reports every thread stopped.
func (s *MemcachedServer) Stop() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
	s.mu.Lock()
	proc := s.proc
	s.mu.Unlock()
	if proc == nil {
		return // killed meanwhile
	}
	stopped := func() bool {
		stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", proc.pid()))
		if len(stats) == 0 || proc.exited() {
			return true // no /proc, or nothing left to stop
		}
		for _, path := range stats {
			stat, err := os.ReadFile(path)
			if err != nil {
				return false
			}
			// The state follows the parenthesised command name.
			i := strings.LastIndexByte(string(stat), ')')
			if i < 0 || i+2 >= len(stat) || stat[i+2] != 'T' {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(5 * time.Second); !stopped(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			s.t.Fatalf("testenv: memcached on %s (pid %d) not stopped 5s after SIGSTOP", s.Addr, proc.pid())
		}
	}
}

// Cont resumes a server frozen by Stop.
func (s *MemcachedServer) Cont() { s.signal(syscall.SIGCONT) }

func (s *MemcachedServer) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	proc := s.proc
	s.mu.Unlock()
	if proc == nil {
		s.t.Fatalf("testenv: memcached on %s: %v: not running", s.Addr, sig)
	}
	if err := proc.signal(sig); err != nil {
		s.t.Fatal(err)
	}
}
