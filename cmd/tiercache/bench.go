package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tiercache/tiercache"
)

// commandLine is how the running command was invoked, for its report.
func commandLine() string { return "tiercache " + strings.Join(os.Args[1:], " ") }

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

// benchFlags are bench's settings.
type benchFlags struct {
	concurrency int
	duration    time.Duration
	count       int64
	keys        int
	valueSize   int
	multiSize   int
	rounds      int
	baseline    bool
	json        bool
	keyFormat   string
	memory      bool
}

var scenarios = []string{"hit", "durable", "cold", "stampede", "multi", "zipf"}

func newBenchCmd(g *globals) *cobra.Command {
	var fl benchFlags
	var zf zipfFlags
	cmd := &cobra.Command{
		Use:   "bench -c FILE SCENARIO",
		Short: "Benchmark the chain: hit, durable, cold, stampede, multi or zipf",
		Long: `bench is memslap for the whole chain of -c. It runs one scenario with
--concurrency workers for --duration (or --count operations) and prints the
throughput and the p50, p90, p99 and p99.9 latency of one operation:

  hit       Get of a key memcached holds; with --memory, of a key the
            memory tier holds (the file needs a memory section)
  durable   Get of a key memcached lacks and the durable tier holds (then
            backfilled; the key is deleted from memcached again, untimed)
  cold      Get of a key only the source has (the key is invalidated in
            every tier again, untimed); keys are --key-format of 1..--keys
            and must exist in the source
  stampede  --concurrency callers Get the same cold key at once, over and
            over; each caller's Get is one operation
  multi     GetMulti of --multi-size keys memcached holds
  zipf      --procs processes, each with --concurrency workers, Get keys of
            Zipf popularity that keep expiring, comparing chains with and
            without leases, early refresh and stale-while-revalidate (below)

With --baseline the same workers interleave each operation with the same
work done without tiercache — a raw gomemcache Get (GetMulti for multi) of
a key of the same length and size, or for cold and stampede the raw SQL
query for one key — so both run in the same conditions, and the report
gives chain/baseline ratios: the p50 ratio is the median of the per-round
ratios (--rounds).

Only hit --memory builds the file's memory tier: the other scenarios
measure the tiers below it. hit, durable and multi write keys "bench:c:N" (and "bench:r:N" for the
baseline) to memcached and delete them at the end. The durable tier is a
scratch file, never the file of -c. ops/s is operations over the time spent
in them, per worker, summed over the workers (for stampede: callers over
the time from each release to its last answer). Start the memcached you
benchmark with -t 1 for stable comparisons.

zipf is many application processes sharing the memcached pool and the
database when hot keys expire. It runs --procs worker processes (this
program again), each building the chain of -c with a scratch durable file
of its own in --durable-dir (removed at the end unless --keep-durable).
Their --concurrency workers Get keys --key-format of 1..--keys, which must
exist in the source, chosen with Zipf popularity (--zipf-s), and every tier
keeps values for --ttl only; with --invalidate, the processes also Delete
(or Set, --invalidate-with) that many Zipf-chosen keys a second between
them. It compares --variants of the chain in one run: configured (the file
as it is), off (no leases, early refresh, stale-while-revalidate or memory
tier), or leases, early, swr and memory joined by + (those features only,
with the file's settings or defaults). Each round runs every variant for --phase, the
first --settle of it not measured, in turn (A B A B ...), for --duration
(1m unless given), so that whatever else the machine does falls on all of
them. A variant's keys expire while the others run, so each of its phases
opens on a cold cache, as after a deploy: make --phase a few --ttl long
for the steady state to dominate. The report has a column per variant and the first one's ratio to
each other: SQL statements/s (the database's load, the figure to read
first), keys loaded/s, Gets/s, Get p50, p99 and p99.9, the memcached hit
ratio, lease waits, timeouts and fallbacks, early refreshes and errors,
summed over the processes; --server-selects adds the database server's own
count of SELECTs (every client's). Each variant's memcached keys carry a
prefix of their own, "bench:zipf:N:" after key_prefix, and expire within
seconds: the application's keys are never touched.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if !slices.Contains(scenarios, a[0]) {
				return usageError("unknown scenario %q: want one of %s", a[0], strings.Join(scenarios, ", "))
			}
			if a[0] == "zipf" {
				if fl.concurrency < 1 || fl.keys < 1 {
					return usageError("--concurrency and --keys must be at least 1")
				}
				return runZipf(cmd.Context(), g, cmd.Flags(), fl, zf)
			}
			if fl.concurrency < 1 || fl.keys < 1 || fl.valueSize < 0 || fl.multiSize < 1 || fl.rounds < 1 {
				return usageError("--concurrency, --keys, --multi-size and --rounds must be at least 1")
			}
			if fl.count <= 0 && fl.duration <= 0 {
				return usageError("give a positive --duration or --count")
			}
			if fl.count > 0 && fl.count < int64(fl.rounds) {
				fl.rounds = int(fl.count)
			}
			dir, err := os.MkdirTemp("", "tiercache-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			opts := scratchDurable(dir + "/bench.db")
			if a[0] != "hit" || !fl.memory {
				opts = append(opts, tiercache.WithoutMemory())
			}
			chain, err := g.loadChain(opts...)
			if err != nil {
				return err
			}
			defer chain.Close()
			b, err := newBench(cmd.Context(), chain, a[0], fl, g.io)
			if err != nil {
				return err
			}
			defer b.cleanup()
			rep, err := b.run()
			if err != nil {
				return err
			}
			rep.Command = commandLine()
			return writeReport(g.io.out, fl.json, rep, func() { printBench(g.io.out, rep) })
		},
	}
	f := cmd.Flags()
	f.IntVar(&fl.concurrency, "concurrency", 4, "workers (callers per stampede)")
	f.DurationVar(&fl.duration, "duration", 10*time.Second, "how long to run (zipf: 1m unless given)")
	f.Int64Var(&fl.count, "count", 0, "run this many operations instead of --duration")
	f.IntVar(&fl.keys, "keys", 1000, "distinct keys")
	f.IntVar(&fl.valueSize, "value-size", 100, "bytes per value (hit, durable, multi)")
	f.IntVar(&fl.multiSize, "multi-size", 100, "keys per GetMulti (multi)")
	f.IntVar(&fl.rounds, "rounds", 5, "rounds the run is split into for the ratios")
	f.BoolVar(&fl.baseline, "baseline", false, "interleave the same work without tiercache and print the ratios")
	f.BoolVar(&fl.json, "json", false, "print the report as JSON")
	f.BoolVar(&fl.memory, "memory", false, "hit: Gets the memory tier answers")
	f.StringVar(&fl.keyFormat, "key-format", "%d", "cold, stampede, zipf: the source's keys, from 1 to --keys")
	zf.register(f)
	return cmd
}

// benchReport is what bench prints; --json prints it as is.
type benchReport struct {
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

func printBench(w interface{ Write([]byte) (int, error) }, r *benchReport) {
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
