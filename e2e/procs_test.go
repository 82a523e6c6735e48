package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the "mysql" driver for the helpers' sql.Open

	"github.com/tiercache/tiercache/loader/sqlload"
	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
)

// Tests with several OS processes.
//
// A test that needs processes of its own runs this test binary again, once
// per process, with -test.run=^TestHelperProcess$ and the helper's job in
// the environment variable helperEnv. The helper builds a chain over the
// servers the parent names, says "ready", waits for "go" on its stdin, does
// its job, and writes one "result" line of JSON before it exits. Lines
// the helpers write start with helperPrefix; everything else on their
// stdout (the testing package's own) is ignored.

const (
	helperEnv    = "TIERCACHE_E2E_HELPER"
	helperPrefix = "helper: "
)

// helperJob is what a helper process is told to do.
type helperJob struct {
	Mode       string // "stampede", "holder", "stress", "bench"
	Memcached  string
	DSN        string
	Query      string
	BoltPath   string // "" for a chain without a durable tier
	Keys       []string
	Goroutines int

	Leases       bool
	LeaseTTL     time.Duration
	LeaseWait    time.Duration
	EarlyRefresh float64
	Grace        time.Duration
	TopTTL       time.Duration
	DiskTTL      time.Duration

	Duration  time.Duration // stress, bench: how long to run at most
	Ops       int           // stress: reads to check
	LoadDelay time.Duration // bench: added to every load, as a slower query would
	Deletes   int           // bench: Deletes per second
	Index     int           // stress: this helper's number, of Procs
	Procs     int
}

// helperResult is what a helper reports.
type helperResult struct {
	Stats      tier.Stats
	Errors     []string
	Reads      int64 // stress: reads checked; bench: Gets
	Writes     int64 // stress: invalidations
	Violations []string
	Latency    []int64 // bench: histogram, see latencyBuckets
}

// TestHelperProcess is the body of a helper process; run directly, with
// helperEnv unset, it does nothing.
func TestHelperProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		return
	}
	var job helperJob
	if err := json.Unmarshal([]byte(raw), &job); err != nil {
		t.Fatal(err)
	}
	h, err := newHelperChain(job)
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	say("ready")
	if line, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil || strings.TrimSpace(line) != "go" {
		t.Fatalf("waiting for go: %q, %v", line, err)
	}
	var res helperResult
	switch job.Mode {
	case "stampede":
		res = h.stampede()
	case "holder":
		h.holder()
	case "stress":
		res = h.stress()
	case "bench":
		res = h.bench()
	default:
		t.Fatalf("unknown mode %q", job.Mode)
	}
	res.Stats = h.cache.Stats()
	out, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	say("result " + string(out))
}

var sayMu sync.Mutex

func say(line string) {
	sayMu.Lock()
	defer sayMu.Unlock()
	fmt.Fprintln(os.Stdout, helperPrefix+line)
}

// helperChain is a helper process's chain: memcached, optionally bbolt,
// and the SQL loader, with a hook around every load.
type helperChain struct {
	job   helperJob
	db    *sql.DB
	cache *tier.Cache
	hook  func(ctx context.Context, keys []string) // before each load; nil: none
}

func newHelperChain(job helperJob) (*helperChain, error) {
	h := &helperChain{job: job}
	var err error
	if h.db, err = sql.Open("mysql", job.DSN); err != nil {
		return nil, err
	}
	src, err := sqlload.New(h.db, job.Query)
	if err != nil {
		return nil, err
	}
	// Generous timeouts: a dozen race-detector processes share two cores,
	// and a node marked down would turn leases off for its keys.
	mc, err := memcached.New([]string{job.Memcached + ":1"}, memcached.WithTimeout(10*time.Second),
		memcached.WithFailureLimit(1<<20))
	if err != nil {
		return nil, err
	}
	opts := []tier.Option{tier.WithTier(mc, job.TopTTL)}
	if job.BoltPath != "" {
		disk, err := boltdb.Open(job.BoltPath)
		if err != nil {
			return nil, err
		}
		opts = append(opts, tier.WithTier(disk, job.DiskTTL))
	}
	if job.Leases {
		opts = append(opts, tier.WithLeases(tier.WithLeaseTTL(job.LeaseTTL), tier.WithLeaseWait(job.LeaseWait)))
	}
	if job.EarlyRefresh > 0 {
		opts = append(opts, tier.WithEarlyRefresh(job.EarlyRefresh))
	}
	if job.Grace > 0 {
		opts = append(opts, tier.WithStaleWhileRevalidate(job.Grace))
	}
	loader := tier.LoaderFunc(func(ctx context.Context, keys []string) (map[string][]byte, error) {
		if h.hook != nil {
			h.hook(ctx, keys)
		}
		if job.LoadDelay > 0 {
			time.Sleep(job.LoadDelay)
		}
		return src.Load(ctx, keys)
	})
	if h.cache, err = tier.New(loader, opts...); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *helperChain) close() {
	h.cache.Close()
	h.db.Close()
}

// helperProc is a running helper process, seen from the parent.
type helperProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *syncBuffer
	done   chan struct{} // closed when its stdout ends
	waited bool
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startHelpers starts a helper process for each job, all at once, and
// waits until every one is ready. They are killed, if still running, when
// the test ends.
func startHelpers(t testing.TB, jobs ...helperJob) []*helperProc {
	t.Helper()
	procs := make([]*helperProc, len(jobs))
	for i, job := range jobs {
		procs[i] = launchHelper(t, job)
	}
	for _, p := range procs {
		p.expect(t, "ready")
	}
	return procs
}

func launchHelper(t testing.TB, job helperJob) *helperProc {
	t.Helper()
	raw, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	p := &helperProc{cmd: cmd, lines: make(chan string, 64), stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), helperPrefix); ok {
				p.lines <- line
			}
		}
	}()
	p.done = done
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if !p.waited {
			cmd.Wait()
		}
	})
	return p
}

// expect waits for the helper's next line, which must start with want,
// and returns the rest of it.
func (p *helperProc) expect(t testing.TB, want string) string {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatalf("helper exited before %q:\n%s", want, p.stderr)
		}
		rest, found := strings.CutPrefix(line, want)
		if !found {
			t.Fatalf("helper said %q, want %q", line, want)
		}
		return strings.TrimSpace(rest)
	case <-time.After(2 * time.Minute):
		t.Fatalf("helper said nothing for 2 minutes, want %q:\n%s", want, p.stderr)
	}
	return ""
}

func (p *helperProc) start(t testing.TB) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
}

// result waits for the helper's result and for it to exit, which it
// must do successfully.
func (p *helperProc) result(t testing.TB) helperResult {
	t.Helper()
	var res helperResult
	if err := json.Unmarshal([]byte(p.expect(t, "result")), &res); err != nil {
		t.Fatal(err)
	}
	for range p.lines {
	}
	<-p.done
	p.waited = true
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, p.stderr)
	}
	for _, e := range res.Errors {
		t.Errorf("helper: %s", e)
	}
	return res
}

// kill kills the helper with SIGKILL, as a crash would, and reaps it.
func (p *helperProc) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for range p.lines {
	}
	<-p.done
	p.waited = true
	p.cmd.Wait()
}
