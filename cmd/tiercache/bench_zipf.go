package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/tiercache/tiercache/config"
)

// The zipf scenario: several processes reading keys of Zipf popularity
// through chains whose values expire within seconds, so that hot keys keep
// expiring, the way a fleet of application servers shares one memcached
// pool and one database. It measures what leases, early refresh and
// stale-while-revalidate change there, above all in the SQL statements the
// database receives, by comparing variants of the file's chain in one run.
//
// The variants run in turn, in short phases (A B A B ...) rather than one
// long run each: whatever else the machine does then falls on both.

// zipfFlags are the zipf scenario's own settings.
type zipfFlags struct {
	procs          int
	zipfS          float64
	ttl            time.Duration
	invalidate     float64
	invalidateWith string
	variants       string
	phase, settle  time.Duration
	durableDir     string
	keepDurable    bool
	serverSelects  bool
}

// defaultZipfDuration replaces bench's --duration default for zipf, which
// needs several rounds of phases several TTLs long.
const defaultZipfDuration = time.Minute

// maxInvalidate bounds --invalidate, so that each process's interval
// between invalidations stays a positive duration.
const maxInvalidate = 1e6

func (z *zipfFlags) register(f *pflag.FlagSet) {
	f.IntVar(&z.procs, "procs", 4, "zipf: worker processes")
	f.Float64Var(&z.zipfS, "zipf-s", 1.1, "zipf: the Zipf exponent s, more than 1 (larger: the hottest keys are hotter)")
	f.DurationVar(&z.ttl, "ttl", 2*time.Second, "zipf: the TTL of every tier, instead of the file's")
	f.Float64Var(&z.invalidate, "invalidate", 0, "zipf: invalidations per second, of Zipf-chosen keys, shared by the processes")
	f.StringVar(&z.invalidateWith, "invalidate-with", "delete", "zipf: invalidate with delete, or set (writing back the value read)")
	f.StringVar(&z.variants, "variants", "configured,off", "zipf: the chains compared: configured, off, or leases, early, swr, memory joined by +")
	f.DurationVar(&z.phase, "phase", 6*time.Second, "zipf: how long each variant runs in each round")
	f.DurationVar(&z.settle, "settle", 2*time.Second, "zipf: the start of each phase, not measured")
	f.StringVar(&z.durableDir, "durable-dir", "", "zipf: where the processes' scratch durable files go (default: the temporary directory)")
	f.BoolVar(&z.keepDurable, "keep-durable", false, "zipf: keep the scratch durable files, and say where")
	f.BoolVar(&z.serverSelects, "server-selects", false, "zipf: also count SELECTs at the database server (every client's)")
}

// zipfRun is one run of the scenario, from bench's side.
type zipfRun struct {
	g        *globals
	fl       benchFlags
	zf       zipfFlags
	variants []string
	configs  []*config.File
	rounds   int
	dir      string
	db       *sql.DB // the source, for --server-selects
}

func runZipf(ctx context.Context, g *globals, flags *pflag.FlagSet, fl benchFlags, zf zipfFlags) error {
	for _, name := range []string{"count", "baseline", "rounds"} {
		if flags.Changed(name) {
			return usageError("zipf: --%s does not apply: zipf runs for --duration and compares --variants", name)
		}
	}
	if !flags.Changed("duration") {
		fl.duration = defaultZipfDuration
	}
	variants, err := parseVariants(zf.variants)
	if err != nil {
		return usageError("%v", err)
	}
	switch {
	case zf.procs < 1:
		return usageError("--procs must be at least 1")
	case !(zf.zipfS > 1) || math.IsInf(zf.zipfS, 0):
		return usageError("--zipf-s %g: want a number more than 1", zf.zipfS)
	case zf.ttl <= 0:
		return usageError("--ttl must be positive")
	case !(zf.invalidate >= 0 && zf.invalidate <= maxInvalidate):
		return usageError("--invalidate %g: want 0 to %g per second", zf.invalidate, float64(maxInvalidate))
	case zf.invalidateWith != "delete" && zf.invalidateWith != "set":
		return usageError("--invalidate-with %q: want delete or set", zf.invalidateWith)
	case zf.phase <= 0 || zf.settle < 0 || zf.settle >= zf.phase:
		return usageError("--phase must be positive and --settle shorter than it")
	}
	round := zf.phase * time.Duration(len(variants))
	rounds := int(fl.duration / round)
	if rounds < 1 {
		return usageError("--duration %v holds no round: a round runs each of the %d variants for --phase %v", fl.duration, len(variants), zf.phase)
	}

	f, err := g.loadConfig()
	if err != nil {
		return err
	}
	if f.Memcached == nil {
		return fmt.Errorf("scenario zipf needs a memcached section in %s", f.Path())
	}
	r := &zipfRun{g: g, fl: fl, zf: zf, variants: variants, rounds: rounds}
	for i, name := range variants {
		r.configs = append(r.configs, variantConfig(f, name, i, zf.ttl))
	}
	if r.db, err = openSource(ctx, f); err != nil {
		return err
	}
	defer r.db.Close()
	if f.Durable != nil {
		if r.dir, err = os.MkdirTemp(zf.durableDir, "tiercache-bench-zipf-"); err != nil {
			return err
		}
		if !zf.keepDurable {
			defer os.RemoveAll(r.dir)
		}
	}
	rep, err := r.run(ctx)
	if err != nil {
		return err
	}
	rep.Command = commandLine()
	if zf.keepDurable && r.dir != "" {
		rep.DurableDir = r.dir
		fmt.Fprintf(g.io.err, "the durable files are kept in %s\n", r.dir)
	}
	return writeReport(g.io.out, fl.json, rep, func() { printZipf(g.io.out, rep) })
}

// openSource connects to the file's source, which the workers load from,
// to find out now rather than in every Get that it does not answer.
func openSource(ctx context.Context, f *config.File) (*sql.DB, error) {
	dsn, err := f.SourceDSN()
	if err != nil {
		return nil, err
	}
	db, err := sql.Open(f.Source.Driver, dsn)
	if err != nil {
		return nil, f.Wrap([]string{"source", "dsn"}, err)
	}
	db.SetMaxOpenConns(1)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("zipf loads keys from the source, which does not answer: %w", err)
	}
	return db, nil
}

// serverSelects reads the database server's count of SELECT statements,
// every client's, prepared or not.
func serverSelects(ctx context.Context, db *sql.DB) (int64, error) {
	var name string
	var n int64
	if err := db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Com_select'").Scan(&name, &n); err != nil {
		return 0, fmt.Errorf("--server-selects: %w", err)
	}
	return n, nil
}

func (r *zipfRun) run(ctx context.Context) (*zipfReport, error) {
	zf := r.zf
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var logMu sync.Mutex
	var procs []*zipfProc
	defer func() { _ = stopWorkers(procs, cancel, false) }()
	for i := range zf.procs {
		p, err := startWorker(wctx, r.g, i, &logMu)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	for i, p := range procs {
		job := zipfJob{
			Index: i, Concurrency: r.fl.concurrency, Keys: r.fl.keys, KeyFormat: r.fl.keyFormat,
			ZipfS: zf.zipfS, TTL: zf.ttl, Invalidate: zf.invalidate / float64(zf.procs),
			InvalidateWith: zf.invalidateWith, Variants: r.variants, DurableDir: r.dir,
		}
		if err := p.send(job); err != nil {
			return nil, err
		}
	}
	for _, p := range procs {
		line, err := p.receive(ctx, workerStartTimeout)
		if err != nil {
			return nil, err
		}
		if string(line) != workerReady {
			return nil, fmt.Errorf("worker %d: want %q, got %q", p.index, workerReady, line)
		}
	}

	acc := newZipfAccumulator(r)
	total := time.Duration(r.rounds*len(r.variants)) * zf.phase
	start := time.Now()
	bar := startProgress(r.g.io, total.Milliseconds(), "bench zipf", false,
		func() int64 { return time.Since(start).Milliseconds() })
	defer bar.finish()
	for round := range r.rounds {
		for v := range r.variants {
			res, selects, err := r.phase(ctx, procs, zipfPhase{Round: round, Variant: v, Settle: zf.settle, Measure: zf.phase - zf.settle})
			if err != nil {
				return nil, err
			}
			acc.phase(round, v, res, selects)
		}
	}
	wall := time.Since(start)
	if err := stopWorkers(procs, cancel, true); err != nil {
		return nil, err
	}
	return acc.report(wall), nil
}

// phase runs one phase in every worker and merges what they measured. With
// --server-selects, selects is the server's count over the measured part,
// else -1.
func (r *zipfRun) phase(ctx context.Context, procs []*zipfProc, p zipfPhase) (zipfPhaseResult, int64, error) {
	var merged zipfPhaseResult
	selects := int64(-1)
	for _, proc := range procs {
		if err := proc.send(p); err != nil {
			return merged, 0, err
		}
	}
	if r.zf.serverSelects {
		t := time.NewTimer(p.Settle)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return merged, 0, ctx.Err()
		}
		n, err := serverSelects(ctx, r.db)
		if err != nil {
			return merged, 0, err
		}
		selects = -n
	}
	for _, proc := range procs {
		line, err := proc.receive(ctx, p.Settle+p.Measure+phaseSlack)
		if err != nil {
			return merged, 0, err
		}
		var res zipfPhaseResult
		if err := json.Unmarshal(line, &res); err != nil {
			return merged, 0, fmt.Errorf("worker %d: %w: %q", proc.index, err, line)
		}
		merged.add(res)
	}
	if r.zf.serverSelects {
		n, err := serverSelects(ctx, r.db)
		if err != nil {
			return merged, 0, err
		}
		selects += n
	}
	return merged, selects, nil
}
