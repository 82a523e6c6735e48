package main

import (
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tiercache/tiercache/cmd/tiercache/internal/bench"
)

// The benchmark harness lives in internal/bench; this file wires its flags
// and hands it what it needs of the command line.

func newBenchCmd(g *globals) *cobra.Command {
	var fl bench.Flags
	var zf bench.ZipfFlags
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

Every scenario's memcached keys carry a prefix of its own, "bench:SCENARIO:"
after key_prefix, so the application's keys in a shared memcached are never
read, overwritten or deleted, not even by cold and stampede, which ask the
source for its own keys. hit, durable and multi write keys "bench:c:N" (and
"bench:r:N" for the baseline) under it and delete them at the end. The durable tier is a
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
			env := g.benchEnv()
			if a[0] == "zipf" {
				if fl.Concurrency < 1 || fl.Keys < 1 {
					return usageError("--concurrency and --keys must be at least 1")
				}
				return bench.RunZipf(cmd.Context(), env, cmd.Flags(), fl, zf)
			}
			return bench.Run(cmd.Context(), env, a[0], fl)
		},
	}
	f := cmd.Flags()
	f.IntVar(&fl.Concurrency, "concurrency", 4, "workers (callers per stampede)")
	f.DurationVar(&fl.Duration, "duration", 10*time.Second, "how long to run (zipf: 1m unless given)")
	f.Int64Var(&fl.Count, "count", 0, "run this many operations instead of --duration")
	f.IntVar(&fl.Keys, "keys", 1000, "distinct keys")
	f.IntVar(&fl.ValueSize, "value-size", 100, "bytes per value (hit, durable, multi)")
	f.IntVar(&fl.MultiSize, "multi-size", 100, "keys per GetMulti (multi)")
	f.IntVar(&fl.Rounds, "rounds", 5, "rounds the run is split into for the ratios")
	f.BoolVar(&fl.Baseline, "baseline", false, "interleave the same work without tiercache and print the ratios")
	f.BoolVar(&fl.JSON, "json", false, "print the report as JSON")
	f.BoolVar(&fl.Memory, "memory", false, "hit: Gets the memory tier answers")
	f.StringVar(&fl.KeyFormat, "key-format", "%d", "cold, stampede, zipf: the source's keys, from 1 to --keys")
	registerZipfFlags(f, &zf)
	return cmd
}

// registerZipfFlags adds the zipf scenario's own flags to f.
func registerZipfFlags(f *pflag.FlagSet, z *bench.ZipfFlags) {
	f.IntVar(&z.Procs, "procs", 4, "zipf: worker processes")
	f.Float64Var(&z.ZipfS, "zipf-s", 1.1, "zipf: the Zipf exponent s, more than 1 (larger: the hottest keys are hotter)")
	f.DurationVar(&z.TTL, "ttl", 2*time.Second, "zipf: the TTL of every tier, instead of the file's")
	f.Float64Var(&z.Invalidate, "invalidate", 0, "zipf: invalidations per second, of Zipf-chosen keys, shared by the processes")
	f.StringVar(&z.InvalidateWith, "invalidate-with", "delete", "zipf: invalidate with delete, or set (writing back the value read)")
	f.StringVar(&z.Variants, "variants", "configured,off", "zipf: the chains compared: configured, off, or leases, early, swr, memory joined by +")
	f.DurationVar(&z.Phase, "phase", 6*time.Second, "zipf: how long each variant runs in each round")
	f.DurationVar(&z.Settle, "settle", 2*time.Second, "zipf: the start of each phase, not measured")
	f.StringVar(&z.DurableDir, "durable-dir", "", "zipf: where the processes' scratch durable files go (default: the temporary directory)")
	f.BoolVar(&z.KeepDurable, "keep-durable", false, "zipf: keep the scratch durable files, and say where")
	f.BoolVar(&z.ServerSelects, "server-selects", false, "zipf: also count SELECTs at the database server (every client's)")
}

func newBenchWorkerCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    bench.WorkerCommand + " -c FILE",
		Short:  "A worker process of bench zipf (started by bench, not by hand)",
		Hidden: true,
		Args:   args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.RunWorker(cmd.Context(), g.benchEnv())
		},
	}
}

// benchEnv is what the harness takes from the command line.
func (g *globals) benchEnv() bench.Env {
	return bench.Env{
		In: g.io.in, Out: g.io.out, Err: g.io.err,
		Command:      "tiercache " + strings.Join(os.Args[1:], " "),
		ConfigPath:   g.configPath,
		Verbose:      g.verbose,
		LoadConfig:   g.loadConfig,
		ChainOptions: g.toolOptions,
		Progress: func(total int64, description string, current func() int64) func() {
			return startProgress(g.io, total, description, false, current).finish
		},
	}
}
