package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/cmd/tiercache/internal/bench"
)

// TestBenchHitMemory checks that hit --memory times the memory tier and
// that hit without it leaves the memory tier out and times memcached.
func TestBenchHitMemory(t *testing.T) {
	r := newRig(t, 0, "memory:\n  ttl: 1m\n")
	for _, c := range []struct {
		flags    []string
		answered string
	}{
		{[]string{"--memory"}, "memory"},
		{nil, "memcached"},
	} {
		args := append([]string{"bench", "-c", r.config, "--json", "--baseline", "--rounds", "2", "hit", "--count", "300", "--keys", "50"}, c.flags...)
		var rep bench.Report
		if out := mustCLI(t, exitOK, "", args...); json.Unmarshal([]byte(out), &rep) != nil {
			t.Fatalf("%v: %s", c.flags, out)
		}
		var total int64
		for _, n := range rep.AnsweredBy {
			total += n
		}
		if rep.Chain.Ops != 300 || rep.Chain.Errors != 0 || float64(rep.AnsweredBy[c.answered]) < 0.8*float64(total) {
			t.Errorf("hit %v: %d ops, %d errors, answered by %v; want mostly %s", c.flags, rep.Chain.Ops, rep.Chain.Errors, rep.AnsweredBy, c.answered)
		}
	}
	if code, _, errOut := cli(t, "", "bench", "-c", newRig(t, 0, "").config, "hit", "--memory", "--count", "10"); code != exitFailure || !strings.Contains(errOut, "needs a memory section") {
		t.Errorf("hit --memory without a memory section: exit %d, %q", code, errOut)
	}
}
