package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/config"
)

// writeReport writes rep to w as indented JSON when asJSON is set, and
// otherwise has print write it as text.
func writeReport(w io.Writer, asJSON bool, rep any, print func()) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	print()
	return nil
}

// Flags are bench's settings.
type Flags struct {
	Concurrency int
	Duration    time.Duration
	Count       int64
	Keys        int
	ValueSize   int
	MultiSize   int
	Rounds      int
	Baseline    bool
	JSON        bool
	KeyFormat   string
	// Memory makes hit time Gets the memory tier answers; every other
	// scenario builds the chain without the file's memory tier, to
	// measure the tiers below it.
	Memory bool
}

// Scenarios are the scenarios Run and RunZipf know.
var Scenarios = []string{"hit", "durable", "cold", "stampede", "multi", "zipf"}

// Run runs scenario (any but zipf) against the chain of env's file, with a
// scratch durable file, and writes its report to env.Out.
func Run(ctx context.Context, env Env, scenario string, fl Flags) error {
	if !slices.Contains(Scenarios, scenario) || scenario == "zipf" {
		return usageError("unknown scenario %q: want one of %s", scenario, strings.Join(Scenarios, ", "))
	}
	if fl.Concurrency < 1 || fl.Keys < 1 || fl.ValueSize < 0 || fl.MultiSize < 1 || fl.Rounds < 1 {
		return usageError("--concurrency, --keys, --multi-size and --rounds must be at least 1")
	}
	if fl.Count <= 0 && fl.Duration <= 0 {
		return usageError("give a positive --duration or --count")
	}
	if fl.Count > 0 && fl.Count < int64(fl.Rounds) {
		fl.Rounds = int(fl.Count)
	}
	f, err := env.LoadConfig()
	if err != nil {
		return err
	}
	f = privatePrefix(f, scenario)
	dir, err := os.MkdirTemp("", "tiercache-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	opts := append(env.ChainOptions(f), scratchDurable(filepath.Join(dir, "bench.db"))...)
	if scenario != "hit" || !fl.Memory {
		opts = append(opts, tiercache.WithoutMemory())
	}
	chain, err := tiercache.Build(f, opts...)
	if err != nil {
		return err
	}
	defer chain.Close()
	b, err := newBench(ctx, chain, scenario, fl, env)
	if err != nil {
		return err
	}
	defer b.cleanup()
	rep, err := b.run()
	if err != nil {
		return err
	}
	rep.Command = env.Command
	return writeReport(env.Out, fl.JSON, rep, func() { printBench(env.Out, rep) })
}

// privatePrefix returns a copy of f whose memcached keys carry a prefix
// of the scenario's own, "bench:SCENARIO:" after key_prefix, so that a
// benchmark never reads, overwrites or deletes the application's keys in
// a shared memcached, even when it asks for the source's own keys (cold,
// stampede).
func privatePrefix(f *config.File, scenario string) *config.File {
	if f.Memcached == nil {
		return f
	}
	pf := *f
	mc := *f.Memcached
	mc.KeyPrefix = fmt.Sprintf("%sbench:%s:", f.Memcached.KeyPrefix, scenario)
	pf.Memcached = &mc
	return &pf
}

// Report is what bench prints; --json prints it as is.
type Report struct {
	Command     string `json:"command"`
	Scenario    string `json:"scenario"`
	Concurrency int    `json:"concurrency"`
	Keys        int    `json:"keys"`
	ValueSize   int    `json:"value_size"`
	MultiSize   int    `json:"multi_size,omitempty"`
	Rounds      int    `json:"rounds"`
	// WallSeconds is the length of the measured run.
	WallSeconds float64     `json:"wall_seconds"`
	Chain       sideReport  `json:"chain"`
	Baseline    *sideReport `json:"baseline,omitempty"`
	// BaselineName is "gomemcache" or "sql".
	BaselineName string       `json:"baseline_name,omitempty"`
	Ratio        *ratioReport `json:"ratio,omitempty"`
	// AnsweredBy counts the chain's answers by tier (hits), "sql" (keys
	// loaded) and "shared" (callers that joined a load).
	AnsweredBy    map[string]int64 `json:"answered_by"`
	SQLStatements int64            `json:"sql_statements"`
}

type sideReport struct {
	Ops       int64   `json:"ops"`
	Errors    int64   `json:"errors"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50Ns     int64   `json:"p50_ns"`
	P90Ns     int64   `json:"p90_ns"`
	P99Ns     int64   `json:"p99_ns"`
	P999Ns    int64   `json:"p999_ns"`
	// RoundP50Ns is the p50 of each round.
	RoundP50Ns []int64 `json:"round_p50_ns"`
}

type ratioReport struct {
	// P50 is the median over the rounds of chain p50 / baseline p50.
	P50       float64   `json:"p50"`
	P99       float64   `json:"p99"`
	OpsPerSec float64   `json:"ops_per_sec"`
	RoundP50  []float64 `json:"round_p50"`
}

func printBench(w interface{ Write([]byte) (int, error) }, r *Report) {
	fmt.Fprintf(w, "%s\n", r.Command)
	what := fmt.Sprintf("scenario %s: %d workers, %d keys", r.Scenario, r.Concurrency, r.Keys)
	if r.Scenario != "cold" && r.Scenario != "stampede" {
		what += fmt.Sprintf(", %d-byte values", r.ValueSize)
	}
	if r.Scenario == "multi" {
		what += fmt.Sprintf(", %d keys per GetMulti", r.MultiSize)
	}
	fmt.Fprintf(w, "%s, %.1fs, %d rounds\n\n", what, r.WallSeconds, r.Rounds)
	fmt.Fprintf(w, "%-16s %10s %12s %10s %10s %10s %10s %8s\n", "", "ops", "ops/s", "p50", "p90", "p99", "p99.9", "errors")
	line := func(name string, s sideReport) {
		fmt.Fprintf(w, "%-16s %10d %12.0f %10s %10s %10s %10s %8d\n", name, s.Ops, s.OpsPerSec,
			dur(s.P50Ns), dur(s.P90Ns), dur(s.P99Ns), dur(s.P999Ns), s.Errors)
	}
	line("tiercache", r.Chain)
	if r.Baseline != nil {
		line("raw "+r.BaselineName, *r.Baseline)
		fmt.Fprintf(w, "\ntiercache / raw %s: p50 %.2f× (median of %d rounds), p99 %.2f×, throughput %.2f×\n",
			r.BaselineName, r.Ratio.P50, r.Rounds, r.Ratio.P99, r.Ratio.OpsPerSec)
	}
	var parts []string
	var total int64
	for _, n := range r.AnsweredBy {
		total += n
	}
	for _, name := range sortedNames(r.AnsweredBy) {
		parts = append(parts, fmt.Sprintf("%s %.1f%%", name, 100*float64(r.AnsweredBy[name])/float64(max(total, 1))))
	}
	fmt.Fprintf(w, "answered by: %s; SQL statements: %d\n", strings.Join(parts, ", "), r.SQLStatements)
}

func dur(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", ns)
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(ns)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(ns)/1e6)
	}
	return d.Round(time.Millisecond).String()
}

func sortedNames(m map[string]int64) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
