package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/cmd/tiercache/internal/bench"
)

// leasesConfig turns on every expiry feature, so that the configured
// variant differs from off in all of them.
const leasesConfig = `leases:
  enabled: true
early_refresh: 1
stale_while_revalidate: 1s
`

// TestBenchZipf runs the zipf scenario end to end, two worker processes
// against real servers, and checks the report's structure: the variants in
// their columns, phases alternating, counters that must agree whatever the
// machine's speed.
func TestBenchZipf(t *testing.T) {
	r := newRig(t, 200, leasesConfig)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	out := mustCLI(t, exitOK, "", "bench", "-c", r.config, "--json", "zipf", "--procs", "2", "--concurrency", "3",
		"--keys", "200", "--ttl", "1s", "--phase", "1s", "--settle", "200ms", "--duration", "4s", "--invalidate", "20")
	var rep bench.ZipfReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Scenario != "zipf" || rep.Procs != 2 || rep.Rounds != 2 || len(rep.Variants) != 2 || len(rep.Ratios) != 1 {
		t.Fatalf("report: %+v", rep)
	}
	on, off := rep.Variants[0], rep.Variants[1]
	if on.Name != "configured" || off.Name != "off" || rep.Ratios[0].Of != "configured/off" {
		t.Errorf("variants %q, %q, ratio %q", on.Name, off.Name, rep.Ratios[0].Of)
	}
	if !strings.Contains(on.Settings, "leases (ttl") || !strings.Contains(off.Settings, "no leases") {
		t.Errorf("settings: %q / %q", on.Settings, off.Settings)
	}
	for _, s := range rep.Variants {
		c := s.Counters
		switch {
		case s.Gets == 0 || c.Gets == 0 || s.GetsPerSec <= 0:
			t.Errorf("%s: no Gets: %+v", s.Name, s)
		case s.Errors != 0 || c.LoadErrors != 0 || c.TopErrors != 0:
			t.Errorf("%s: errors %d (%v), load errors %d, memcached errors %d", s.Name, s.Errors, s.ErrorSamples, c.LoadErrors, c.TopErrors)
		case c.Statements < 1 || c.KeysLoaded < c.Statements || s.SQLPerSec <= 0:
			t.Errorf("%s: %d statements for %d keys, %.1f/s", s.Name, c.Statements, c.KeysLoaded, s.SQLPerSec)
		case !(s.TopHitRatio > 0 && s.TopHitRatio <= 1) || c.TopHits == 0 || c.TopMisses == 0:
			t.Errorf("%s: hit ratio %g (%d hits, %d misses)", s.Name, s.TopHitRatio, c.TopHits, c.TopMisses)
		case !(s.P50Ns > 0 && s.P50Ns <= s.P99Ns && s.P99Ns <= s.P999Ns):
			t.Errorf("%s: p50 %d, p99 %d, p99.9 %d", s.Name, s.P50Ns, s.P99Ns, s.P999Ns)
		case math.Abs(s.MeasuredSeconds-1.6) > 1e-9 || len(s.RoundSQLPerSec) != 2:
			t.Errorf("%s: measured %gs in %d rounds", s.Name, s.MeasuredSeconds, len(s.RoundSQLPerSec))
		case s.Invalidations == 0 || c.Invalidations == 0 || c.NotFound != 0:
			t.Errorf("%s: %d invalidations (%d in the stats), %d keys not found", s.Name, s.Invalidations, c.Invalidations, c.NotFound)
		}
	}
	// Every miss asks for a lease when leases are on, none when they are off.
	if on.Counters.LeaseRequests == 0 {
		t.Errorf("configured: no lease requests: %+v", on.Counters)
	}
	if c := off.Counters; c.LeaseRequests+c.LeaseWaits+c.LeaseFallbacks+c.EarlyRefreshes+c.StaleServed != 0 {
		t.Errorf("off: lease or refresh counters moved: %+v", c)
	}
	if q := rep.Ratios[0]; q.SQLPerSec <= 0 || q.SQLPerSecMedian <= 0 || len(q.RoundSQLPerSec) != 2 {
		t.Errorf("ratios %+v", q)
	}
	var order []string
	for _, p := range rep.Phases {
		order = append(order, strconv.Itoa(p.Round)+":"+p.Variant)
	}
	if got := strings.Join(order, " "); got != "0:configured 0:off 1:configured 1:off" {
		t.Errorf("phases ran %s", got)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left behind in the temporary directory: %v", left)
	}
	checkNoWorkerGoroutines(t)
}

// checkNoWorkerGoroutines fails the test if a goroutine bench started
// for its workers is still there a second after it returned.
func checkNoWorkerGoroutines(t *testing.T) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		left = left[:0]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "bench.(*zipfProc)") || strings.Contains(g, "main.startProgress") ||
				strings.Contains(g, "os/exec.(*Cmd).watchCtx") || strings.Contains(g, "os/exec.(*Cmd).writerDescriptor") {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("goroutines left running:\n%s", strings.Join(left, "\n\n"))
	}
}

// TestBenchZipfText checks the text report and --keep-durable: one
// process per variant file, kept where it says.
func TestBenchZipfText(t *testing.T) {
	r := newRig(t, 50, "")
	dir := t.TempDir()
	code, out, errOut := cli(t, "", "bench", "-c", r.config, "zipf", "--procs", "1", "--concurrency", "2", "--keys", "50",
		"--phase", "500ms", "--settle", "100ms", "--duration", "3s", "--variants", "leases+swr,off,configured",
		"--durable-dir", dir, "--keep-durable", "--server-selects")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"tiercache ", "scenario zipf: 1 process × 2 goroutines, 50 keys",
		"2 rounds of 3 phases", "leases+swr: leases (ttl 3s, wait 5s), no early refresh, stale-while-revalidate 1s",
		"SQL statements/s", "server SELECTs/s (all)", "Get p99.9", "memcached hit ratio", "memcached errors", "leases+swr/off", "leases+swr/configured",
		"SQL statements/s leases+swr/off: median of rounds", "note: variants off and configured are the same chain here"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	kept, _ := filepath.Glob(filepath.Join(dir, "tiercache-bench-zipf-*", "proc0-variant*.db"))
	if len(kept) != 3 || !strings.Contains(errOut, "the durable files are kept in "+filepath.Dir(kept[0])) {
		t.Errorf("kept %v; stderr:\n%s", kept, errOut)
	}
}

// TestBenchZipfInterrupted cancels a run in its first phase: the command
// fails, and no worker process outlives it.
func TestBenchZipfInterrupted(t *testing.T) {
	r := newRig(t, 50, leasesConfig)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errOut strings.Builder
	go func() {
		done <- run(ctx, []string{"bench", "-c", r.config, "zipf", "--procs", "2", "--keys", "50",
			"--phase", "1m", "--settle", "1s", "--duration", "2m"}, stdio{in: strings.NewReader(""), out: &out, err: &errOut})
	}()
	waitForWorkers(t, 2)
	cancel()
	select {
	case code := <-done:
		if code != exitFailure || !strings.Contains(errOut.String(), "context canceled") {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("bench did not return after its context ended")
	}
	if pids := workerPIDs(t); len(pids) != 0 {
		t.Errorf("worker processes left running: %v", pids)
	}
	checkNoWorkerGoroutines(t)
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left behind in the temporary directory: %v", left)
	}
}

// waitForWorkers waits until n worker processes of this test binary run.
func waitForWorkers(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for len(workerPIDs(t)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers running after a minute, want %d", len(workerPIDs(t)), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// workerPIDs lists the processes that are bench workers and children of
// this one, from /proc (which exists where these tests run: Linux).
func workerPIDs(t *testing.T) []int {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Fatalf("workerPIDs reads /proc, which %s lacks", runtime.GOOS)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		cmdline, err2 := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || err2 != nil {
			continue // gone meanwhile
		}
		// stat is "pid (comm) state ppid ...": comm may hold spaces.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(os.Getpid()) && strings.Contains(string(cmdline), "bench-worker") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestBenchZipfUsage checks that bad settings are usage errors, found
// before any process starts.
func TestBenchZipfUsage(t *testing.T) {
	config := filepath.Join(t.TempDir(), "none.yml")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"no procs", []string{"--procs", "0"}},
		{"zipf s of 1", []string{"--zipf-s", "1"}},
		{"zero ttl", []string{"--ttl", "0s"}},
		{"negative invalidations", []string{"--invalidate", "-1"}},
		{"invalidate how", []string{"--invalidate-with", "touch"}},
		{"one variant", []string{"--variants", "configured"}},
		{"unknown variant", []string{"--variants", "configured,fast"}},
		{"variant twice", []string{"--variants", "off,off"}},
		{"swr without leases", []string{"--variants", "configured,swr"}},
		{"settle as long as a phase", []string{"--phase", "2s", "--settle", "2s"}},
		{"no round in the duration", []string{"--duration", "11s"}},
		{"count", []string{"--count", "100"}},
		{"baseline", []string{"--baseline"}},
		{"no concurrency", []string{"--concurrency", "0"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, _, errOut := cli(t, "", append([]string{"bench", "-c", config, "zipf"}, c.args...)...)
			if code != exitUsage || !strings.Contains(errOut, "Run 'tiercache bench --help'") {
				t.Errorf("exit %d, want %d\n%s", code, exitUsage, errOut)
			}
		})
	}
}
