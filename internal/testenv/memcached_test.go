package testenv

import (
	"bufio"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// roundTrip sends a memcached text-protocol command and returns the first
// line of the reply, or an error when none comes within timeout.
func roundTrip(addr, cmd string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte(cmd)); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

func mustRoundTrip(t *testing.T, addr, cmd string) string {
	t.Helper()
	reply, err := roundTrip(addr, cmd, 5*time.Second)
	if err != nil {
		t.Fatalf("%q to %s: %v", cmd, addr, err)
	}
	return reply
}

func TestMemcachedStartsPrivateServers(t *testing.T) {
	t.Parallel()
	a, b := Memcached(t), Memcached(t)
	if a.Addr == b.Addr || a.PID() == b.PID() {
		t.Fatalf("two calls share a server: %s pid %d, %s pid %d", a.Addr, a.PID(), b.Addr, b.PID())
	}
	if !strings.HasPrefix(a.Addr, "127.0.0.1:") {
		t.Errorf("Addr = %s, want 127.0.0.1:port", a.Addr)
	}
	if got := mustRoundTrip(t, a.Addr, "set k 0 0 1\r\nv\r\n"); got != "STORED" {
		t.Fatalf("set: %q", got)
	}
	if got := mustRoundTrip(t, b.Addr, "get k\r\n"); got != "END" {
		t.Fatalf("get from the other server: %q, want END (a miss)", got)
	}
}

func TestMemcachedRestartGivesEmptyServerOnSamePort(t *testing.T) {
	t.Parallel()
	mc := Memcached(t)
	addr, pid := mc.Addr, mc.PID()
	mustRoundTrip(t, addr, "set k 0 0 1\r\nv\r\n")
	if got := mustRoundTrip(t, addr, "get k\r\n"); got != "VALUE k 0 1" {
		t.Fatalf("get before restart: %q", got)
	}
	mc.Restart()
	if mc.Addr != addr {
		t.Fatalf("Addr changed from %s to %s", addr, mc.Addr)
	}
	if mc.PID() == pid || mc.PID() == 0 {
		t.Fatalf("PID %d after restart, was %d: not a new process", mc.PID(), pid)
	}
	if got := mustRoundTrip(t, addr, "get k\r\n"); got != "END" {
		t.Fatalf("get after restart: %q, want END (empty server)", got)
	}
}

func TestMemcachedKill(t *testing.T) {
	t.Parallel()
	mc := Memcached(t)
	mc.Kill()
	if mc.PID() != 0 {
		t.Errorf("PID = %d after Kill", mc.PID())
	}
	if _, err := roundTrip(mc.Addr, "version\r\n", time.Second); err == nil {
		t.Fatal("killed server still answers")
	}
	mc.Kill() // twice is fine
	mc.Restart()
	if got := mustRoundTrip(t, mc.Addr, "version\r\n"); !strings.HasPrefix(got, "VERSION ") {
		t.Fatalf("version after restart of a killed server: %q", got)
	}
}

func TestMemcachedStopCont(t *testing.T) {
	t.Parallel()
	mc := Memcached(t)
	mc.Stop()
	_, err := roundTrip(mc.Addr, "version\r\n", 300*time.Millisecond)
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("stopped server: err = %v, want a timeout", err)
	}
	mc.Cont()
	if got := mustRoundTrip(t, mc.Addr, "version\r\n"); !strings.HasPrefix(got, "VERSION ") {
		t.Fatalf("version after Cont: %q", got)
	}
}

func TestMemcachedItemSize(t *testing.T) {
	t.Parallel()
	value := strings.Repeat("x", 1536*1024)
	set := "set big 0 0 " + strconv.Itoa(len(value)) + "\r\n" + value + "\r\n"
	if got := mustRoundTrip(t, Memcached(t).Addr, set); got == "STORED" {
		t.Fatal("default server stored a 1.5 MiB item; want it refused")
	}
	mc := Memcached(t, WithItemSize(2<<20), WithMemoryMB(32), WithThreads(2))
	if got := mustRoundTrip(t, mc.Addr, set); got != "STORED" {
		t.Fatalf("WithItemSize(2 MiB): set 1.5 MiB: %q", got)
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(mc.PID()) + "/cmdline")
	if err == nil {
		args := strings.Join(strings.Split(string(cmdline), "\x00"), " ")
		for _, want := range []string{"-I 2097152", "-m 32", "-t 2", "-U 0", "-l 127.0.0.1"} {
			if !strings.Contains(args, want) {
				t.Errorf("command line %q lacks %q", args, want)
			}
		}
	}
}
