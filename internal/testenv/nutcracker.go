package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// NutcrackerServer is a nutcracker (twemproxy) owned by one test.
type NutcrackerServer struct {
	// Addr is the listen address of the first pool in the configuration,
	// Addrs those of every pool, in the order they appear.
	Addr  string
	Addrs []string
	// StatsAddr serves nutcracker's JSON stats (127.0.0.1, a free port),
	// aggregated every second.
	StatsAddr string
	// ConfigPath is the configuration file nutcracker was started with.
	ConfigPath string

	proc *process
}

// listenRE finds the listen address of each pool: "listen: 127.0.0.1:22121"
// or a unix socket path, optionally quoted and followed by a mode.
var listenRE = regexp.MustCompile(`(?m)^\s*listen:\s*["']?([^\s"'#]+)`)

// Nutcracker starts nutcracker with yamlConfig and returns once every pool
// accepts connections; it is killed when the test ends. The configuration
// names its listen addresses, typically with ports from FreePort:
//
//	cfg := fmt.Sprintf(`alpha:
//	  listen: 127.0.0.1:%d
//	  hash: fnv1a_64
//	  distribution: ketama
//	  servers:
//	   - %s:1 node0
//	`, testenv.FreePort(t), mc.Addr)
//	proxy := testenv.Nutcracker(t, cfg)
//
// An invalid configuration fails the test with nutcracker's own diagnosis.
func Nutcracker(t testing.TB, yamlConfig string) *NutcrackerServer {
	t.Helper()
	path, err := findBinary("nutcracker")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &NutcrackerServer{ConfigPath: filepath.Join(dir, "nutcracker.yml")}
	for _, m := range listenRE.FindAllStringSubmatch(yamlConfig, -1) {
		s.Addrs = append(s.Addrs, m[1])
	}
	if len(s.Addrs) == 0 {
		t.Fatalf("testenv: nutcracker configuration has no listen address:\n%s", yamlConfig)
	}
	s.Addr = s.Addrs[0]
	if err := os.WriteFile(s.ConfigPath, []byte(yamlConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(path, "-t", "-c", s.ConfigPath).CombinedOutput(); err != nil {
		t.Fatalf("testenv: nutcracker rejects the configuration: %v\n%s\n%s", err, out, yamlConfig)
	}
	t.Cleanup(func() {
		if s.proc != nil {
			s.proc.kill()
		}
	})

	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s.StatsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		proc, err := startProcess("nutcracker", filepath.Join(dir, "nutcracker.out"), path,
			"-c", s.ConfigPath, "-s", strconv.Itoa(port), "-a", "127.0.0.1", "-i", "1000",
			"-o", filepath.Join(dir, "nutcracker.log"), "-p", filepath.Join(dir, "nutcracker.pid"))
		if err != nil {
			t.Fatal(err)
		}
		proc.logPath = filepath.Join(dir, "nutcracker.log")
		err = proc.waitReady(startTimeout, func() error {
			for _, addr := range append([]string{s.StatsAddr}, s.Addrs...) {
				if err := dialable(addr); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			s.proc = proc
			return s
		}
		// The stats port may have been taken since freePort; a taken
		// listen port fails every attempt the same way.
		if !errors.Is(err, errAddrInUse) || attempt == 3 {
			t.Fatal(fmt.Errorf("%w\nconfiguration:\n%s", err, yamlConfig))
		}
	}
}

// PID returns the process id of nutcracker.
func (s *NutcrackerServer) PID() int { return s.proc.pid() }
