package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/internal/testenv"
)

// TestStatsOfARunningService starts a chain the way a service does, with
// its stats port, and reads it with the stats command.
func TestStatsOfARunningService(t *testing.T) {
	r := newRig(t, 10, "stats:\n  listen: 127.0.0.1:0\n")
	service, err := tiercache.Load(r.config)
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()
	for _, k := range []string{"1", "1", "2"} {
		if _, err := service.Cache.Get(context.Background(), k); err != nil {
			t.Fatal(err)
		}
		// The chain fills memcached after answering.
		testenv.WaitFor(t, "the fills", func() bool { return service.Cache.Stats().Fills.Pending == 0 })
	}
	out := mustCLI(t, exitOK, "", "stats", "--addr", service.StatsAddr())
	var stats map[string]any
	if err := json.Unmarshal([]byte(out), &stats); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if stats["service"] != "tiercache" {
		t.Errorf("service = %v", stats["service"])
	}
	// The pool reports what the chain counted: one hit at least, and as
	// many misses as the chain's lookups found nothing (2, or 3 when the
	// load of 2 looked at memcached again because the load of 1 had just
	// completed).
	st := service.Cache.Stats().Tiers[0]
	mc, ok := stats["memcached"].(map[string]any)
	if !ok || mc["hits"] != float64(st.Hits) || mc["misses"] != float64(st.Misses) || st.Hits != 1 || st.Misses < 2 {
		t.Fatalf("memcached pool = %v, chain's stats %+v", stats["memcached"], st)
	}
	if loader := stats["loader"].(map[string]any); loader["statements"] != 2.0 {
		t.Errorf("loader = %v", loader)
	}
	if compact := mustCLI(t, exitOK, "", "stats", "--addr", service.StatsAddr(), "--compact"); strings.Count(compact, "\n") != 1 {
		t.Errorf("--compact printed %d lines", strings.Count(compact, "\n"))
	}
	code, _, stderr := cli(t, "", "stats", "--addr", "127.0.0.1:1", "--timeout", "1s")
	if code != exitFailure || !strings.Contains(stderr, "127.0.0.1:1") {
		t.Errorf("stats of nothing: exit %d, %s", code, stderr)
	}
}

// TestWarmup fills the durable file through get, empties memcached, and
// checks that warmup refills it, from the file or from a copy of it.
func TestWarmup(t *testing.T) {
	r := newRig(t, 30, "")
	keys := make([]string, 30)
	for i := range keys {
		keys[i] = fmt.Sprint(i + 1)
	}
	mustCLI(t, exitOK, "", append([]string{"get", "-c", r.config}, keys...)...)
	r.mc.Restart()
	out := mustCLI(t, exitOK, "", "warmup", "-c", r.config)
	if !strings.Contains(out, "scanned 30, written 30") {
		t.Fatalf("warmup: %s", out)
	}
	if got := mustCLI(t, exitOK, "", "get", "-c", r.config, "--no-durable", "17"); got != "17\tmemcached\tarticle 17\n" {
		t.Fatalf("after warmup: %q", got)
	}
	if out := mustCLI(t, exitOK, "", "warmup", "-c", r.config, "--rate", "1000", "--burst", "10"); !strings.Contains(out, "written 0, already present 30") {
		t.Fatalf("second warmup: %s", out)
	}

	// Beside a service holding the file: busy, unless --copy.
	r.mc.Restart()
	service, err := tiercache.Load(r.config)
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()
	if code, _, _ := cli(t, "", "warmup", "-c", r.config, "--rate", "-1"); code != exitUsage {
		t.Fatalf("warmup --rate -1: exit %d, want %d", code, exitUsage)
	}
	if code, _, _ := cli(t, "", "warmup", "-c", r.config, "--lock-timeout", "50ms"); code != exitBusy {
		t.Fatalf("warmup beside a service: exit %d, want %d", code, exitBusy)
	}
	if out := mustCLI(t, exitOK, "", "warmup", "-c", r.config, "--copy"); !strings.Contains(out, "written 30") {
		t.Fatalf("warmup --copy: %s", out)
	}
}
