package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/cmd/tiercache/internal/bench"
	"github.com/tiercache/tiercache/internal/testenv"
)

// TestBench runs every scenario in a tiny count-limited run and checks the
// JSON report: the operations counted, the baseline beside the chain, and
// who answered.
func TestBench(t *testing.T) {
	r := newRig(t, 100, "")
	// The application's own copy of key 1 in memcached: no scenario may
	// touch it (cold and stampede read the source's keys 1..--keys).
	mustCLI(t, exitOK, "", "get", "-c", r.config, "--no-durable", "1")
	app := testenv.RawClient(r.mc.Addr)
	app.Timeout = 10 * time.Second // generous: a correctness check on a busy machine
	before, err := app.Get("1")
	if err != nil {
		t.Fatalf("the application's key 1: %v", err)
	}
	cases := []struct {
		scenario string
		flags    []string
		baseline string
		answered string // the tier that must answer nearly everything
	}{
		{"hit", []string{"--count", "300", "--keys", "50"}, "gomemcache", "memcached"},
		{"durable", []string{"--count", "100", "--keys", "50"}, "gomemcache", "bbolt"},
		{"cold", []string{"--count", "60", "--keys", "100"}, "sql", "sql"},
		{"stampede", []string{"--count", "40", "--concurrency", "8", "--keys", "100"}, "sql", ""},
		{"multi", []string{"--count", "20", "--keys", "50", "--multi-size", "10"}, "gomemcache", "memcached"},
	}
	for _, c := range cases {
		args := append([]string{"bench", "-c", r.config, "--json", "--baseline", "--rounds", "2", c.scenario}, c.flags...)
		out := mustCLI(t, exitOK, "", args...)
		var rep bench.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%s: %v\n%s", c.scenario, err, out)
		}
		if rep.Scenario != c.scenario || rep.Chain.Ops == 0 || rep.Chain.Errors != 0 || rep.Chain.P50Ns <= 0 ||
			rep.Chain.P50Ns > rep.Chain.P999Ns || rep.Chain.OpsPerSec <= 0 {
			t.Errorf("%s: chain %+v", c.scenario, rep.Chain)
		}
		if rep.Baseline == nil || rep.BaselineName != c.baseline || rep.Baseline.Ops != rep.Chain.Ops || rep.Ratio == nil || rep.Ratio.P50 <= 0 {
			t.Errorf("%s: baseline %q %+v, ratio %+v", c.scenario, rep.BaselineName, rep.Baseline, rep.Ratio)
		}
		if c.answered != "" {
			var total int64
			for _, n := range rep.AnsweredBy {
				total += n
			}
			// Callers that joined a trip another caller made were answered
			// where that trip was.
			if share := float64(rep.AnsweredBy[c.answered]+rep.AnsweredBy["shared"]) / float64(total); share < 0.8 {
				t.Errorf("%s: answered by %v, want mostly %s", c.scenario, rep.AnsweredBy, c.answered)
			}
		}
		if c.scenario == "stampede" {
			// 40 callers in stampedes of 8: 5 stampedes, one statement each.
			if rep.Chain.Ops != 40 || rep.SQLStatements != 5 {
				t.Errorf("stampede: %d ops, %d SQL statements; want 40 and 5", rep.Chain.Ops, rep.SQLStatements)
			}
		}
	}

	if after, err := app.Get("1"); err != nil || !bytes.Equal(after.Value, before.Value) {
		t.Errorf("the application's key 1 after the benchmarks: %v, %v", after, err)
	}

	out := mustCLI(t, exitOK, "", "bench", "-c", r.config, "hit", "--count", "50", "--keys", "10", "--baseline")
	for _, want := range []string{"tiercache ", "raw gomemcache", "p99.9", "tiercache / raw gomemcache: p50", "answered by: memcached"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
}
