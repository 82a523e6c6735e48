package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
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
	if got := stats["loader_statements"]; got != 2.0 {
		t.Errorf("loader_statements = %v", got)
	}
	overHTTP := mustCLI(t, exitOK, "", "stats", "--addr", "http://"+service.StatsAddr()+"/stats")
	var viaHTTP map[string]any
	if err := json.Unmarshal([]byte(overHTTP), &viaHTTP); err != nil {
		t.Fatalf("%v\n%s", err, overHTTP)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(viaHTTP)), slices.Sorted(maps.Keys(stats))) {
		t.Errorf("HTTP and raw differ: %v against %v", slices.Sorted(maps.Keys(viaHTTP)), slices.Sorted(maps.Keys(stats)))
	}
	if compact := mustCLI(t, exitOK, "", "stats", "--addr", service.StatsAddr(), "--compact"); strings.Count(compact, "\n") != 1 {
		t.Errorf("--compact printed %d lines", strings.Count(compact, "\n"))
	}
	code, _, stderr := cli(t, "", "stats", "--addr", "127.0.0.1:1", "--timeout", "1s")
	if code != exitFailure || !strings.Contains(stderr, "127.0.0.1:1") {
		t.Errorf("stats of nothing: exit %d, %s", code, stderr)
	}
}

// TestStatsLikeNutcracker reads a running nutcracker's stats port and a
// tiercache service's with the stats command, both over one memcached, and
// checks field by field that tiercache writes every field nutcracker does,
// at the same level and as a number where nutcracker has a number.
func TestStatsLikeNutcracker(t *testing.T) {
	r := newRig(t, 10, "stats:\n  listen: 127.0.0.1:0\n")
	proxy := testenv.Nutcracker(t, fmt.Sprintf(`alpha:
  listen: 127.0.0.1:%d
  hash: fnv1a_64
  distribution: ketama
  servers:
   - %s:1 cache-a
`, testenv.FreePort(t), r.mc.Addr))
	service, err := tiercache.Load(r.config)
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()
	if _, err := service.Cache.Get(context.Background(), "1"); err != nil {
		t.Fatal(err)
	}

	read := func(addr string) map[string]any {
		t.Helper()
		out := mustCLI(t, exitOK, "", "stats", "--addr", addr, "--compact")
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%s: %v\n%s", addr, err, out)
		}
		return m
	}
	nc, tc := read(proxy.StatsAddr), read(service.StatsAddr())
	if nc["service"] != "nutcracker" || tc["service"] != "tiercache" {
		t.Fatalf("services %v and %v", nc["service"], tc["service"])
	}
	sameShape := func(where string, want, got map[string]any) {
		t.Helper()
		for k, v := range want {
			g, ok := got[k]
			if !ok {
				t.Errorf("%s: no %q", where, k)
				continue
			}
			if _, isNum := v.(float64); isNum {
				if _, ok := g.(float64); !ok {
					t.Errorf("%s: %q is %T, nutcracker has a number", where, k, g)
				}
			}
		}
	}
	for k, v := range nc {
		if _, isPool := v.(map[string]any); !isPool {
			sameShape("top level", map[string]any{k: v}, tc)
		}
	}
	for k, v := range tc {
		if _, isPool := v.(map[string]any); isPool && k != "memcached" && k != "bbolt" {
			t.Errorf("top-level object %q would be taken for a pool", k)
		}
	}
	ncPool, tcPool := nc["alpha"].(map[string]any), tc["memcached"].(map[string]any)
	for k, v := range ncPool {
		if server, ok := v.(map[string]any); ok {
			tcServer, ok := tcPool[k].(map[string]any)
			if !ok {
				t.Fatalf("no server %q in tiercache's pool: %v", k, tcPool)
			}
			sameShape("server "+k, server, tcServer)
			for f, fv := range tcServer {
				if _, ok := fv.(float64); !ok {
					t.Errorf("server field %q is %T: collectors expect numbers", f, fv)
				}
			}
		} else {
			sameShape("pool", map[string]any{k: v}, tcPool)
		}
	}
	if got := tcPool["cache-a"].(map[string]any)["requests"]; got == 0.0 {
		t.Errorf("the node's requests are 0 after a Get")
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
