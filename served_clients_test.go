package tiercache_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// The clients of these tests are nobody's here: PHP's memcached and
// memcache extensions, pymemcache and libmemcached's memcslap, from
// Debian (scripts/install-clients.sh installs them; scripts/test.sh runs
// it). A missing client fails the test: it is the proof that tiercache
// serve speaks their protocol.

// clientTool returns the first of candidates that exists.
func clientTool(t *testing.T, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	t.Fatalf("none of %v found: run scripts/install-clients.sh", candidates)
	return ""
}

// runClient runs a client program and fails the test unless it exits 0
// and its output ends with "ok".
func runClient(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.WaitDelay = servedTimeout
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "ok") {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// checkFlags reads keys over the raw protocol and wants each stored with
// the flags given: what the client wrote, all 32 bits, unchanged.
func checkFlags(t *testing.T, addr string, want map[string]uint32) {
	t.Helper()
	for key, flags := range want {
		reply := exchange(t, addr, "get "+key+"\r\n")
		var got uint32
		var n int
		if _, err := fmt.Sscanf(reply, "VALUE "+key+" %d %d\r\n", &got, &n); err != nil || got != flags {
			t.Errorf("%s: stored with flags %d (%q), want %d (%#x)", key, got, firstLine(reply), flags, flags)
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

func TestServedPHPMemcached(t *testing.T) {
	t.Parallel()
	php := clientTool(t, "php")
	addr, _, _ := startServed(t, "")
	host, port := hostPort(t, addr)
	runClient(t, php, "testdata/clients/memcached.php", host, port)
	// php-memcached 3.2: 0 string, 1 int, 2 float, 3 bool, 4 serialized,
	// +0x50 compressed (zlib), user flags in the upper 16 bits.
	checkFlags(t, addr, map[string]uint32{
		"php-memcached:string": 0, "php-memcached:int": 1, "php-memcached:float": 2,
		"php-memcached:true": 3, "php-memcached:array": 4, "php-memcached:compressed": 0x50,
		"php-memcached:userflags": 0xBEEF << 16,
	})
}

func TestServedPHPMemcache(t *testing.T) {
	t.Parallel()
	php := clientTool(t, "php")
	addr, _, _ := startServed(t, "")
	host, port := hostPort(t, addr)
	runClient(t, php, "testdata/clients/memcache.php", host, port)
	// php-memcache 4.0: 0 string, 256 bool, 768 int, 1792 float,
	// 1 serialized, +2 compressed.
	checkFlags(t, addr, map[string]uint32{
		"php-memcache:string": 0, "php-memcache:true": 256, "php-memcache:int": 768,
		"php-memcache:float": 1792, "php-memcache:array": 1, "php-memcache:compressed": 2,
	})
}

// TestServedPHPColdKey: PHP processes, half of each extension, ask for
// one cold key at once: one SELECT. After memcached restarts behind the
// server, they get it from the durable tier: no SELECT.
func TestServedPHPColdKey(t *testing.T) {
	t.Parallel()
	php := clientTool(t, "php")
	addr, db, mc := startServed(t, "")
	host, port := hostPort(t, addr)
	ask := func() {
		t.Helper()
		const procs = 8
		var (
			cmds  []*exec.Cmd
			ins   []io.WriteCloser
			outs  []*bufio.Reader
			wg    sync.WaitGroup
			lines = make([]string, procs)
		)
		for i := range procs {
			ext := []string{"memcached", "memcache"}[i%2]
			cmd := exec.Command(php, "testdata/clients/coldkey.php", ext, host, port, "article:3")
			cmd.Stderr = os.Stderr
			in, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds, ins, outs = append(cmds, cmd), append(ins, in), append(outs, bufio.NewReader(out))
		}
		// Every process has connected before any asks.
		for i, r := range outs {
			if line, err := r.ReadString('\n'); line != "ready\n" {
				t.Fatalf("php %d: %q, %v", i, line, err)
			}
		}
		for i := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ins[i].Write([]byte("go\n"))
				ins[i].Close()
				lines[i], _ = outs[i].ReadString('\n')
				cmds[i].Wait()
			}()
		}
		wg.Wait()
		for i, line := range lines {
			if line != "'three'\n" {
				t.Errorf("php %d got %q, want 'three'", i, line)
			}
		}
	}
	before := db.Selects(t)
	ask()
	if n := db.Selects(t) - before; n != 1 {
		t.Fatalf("PHP processes asking for one cold key ran %d SELECTs, want 1", n)
	}
	mc.Restart()
	before = db.Selects(t)
	ask()
	if n := db.Selects(t) - before; n != 0 {
		t.Fatalf("after a memcached restart, %d SELECTs, want 0 (the durable tier answers)", n)
	}
}

func TestServedPymemcache(t *testing.T) {
	t.Parallel()
	// Debian's python3, where python3-pymemcache installs.
	python := clientTool(t, "/usr/bin/python3", "python3")
	addr, _, _ := startServed(t, "")
	host, port := hostPort(t, addr)
	runClient(t, python, "testdata/clients/pymemcache_client.py", host, port)
}

// TestServedMemcslap runs libmemcached's load generator against the
// server: its set, get and mget tests, four threads of 1,000 keys.
func TestServedMemcslap(t *testing.T) {
	t.Parallel()
	slap := clientTool(t, "memcslap", "memslap")
	addr, _, _ := startServed(t, "")
	for _, test := range []string{"set", "get", "mget"} {
		cmd := exec.Command(slap, "--servers="+addr, "--test="+test, "--concurrency=4", "--execute-number=1000")
		cmd.WaitDelay = servedTimeout
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Time total") {
			t.Fatalf("memcslap --test=%s: %v\n%s", test, err, out)
		}
		// mget reads back every key its four threads wrote.
		if test == "mget" && !regexp.MustCompile(`Time to mget +4000 keys`).Match(out) {
			t.Errorf("memcslap --test=mget did not get its 4000 keys back:\n%s", out)
		}
	}
	stats := exchange(t, addr, "stats\r\n")
	for _, want := range []string{"STAT protocol_errors 0\r\n", "STAT backend_errors 0\r\n"} {
		if !strings.Contains(stats, want) {
			t.Errorf("after memcslap, stats lack %q:\n%s", want, stats)
		}
	}
	if strings.Contains(stats, "STAT cmd_get 0\r\n") || strings.Contains(stats, "STAT cmd_set 0\r\n") {
		t.Errorf("memcslap's gets or sets did not reach the server:\n%s", stats)
	}
}
