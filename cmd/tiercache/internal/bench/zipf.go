package bench

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

// ZipfFlags are the zipf scenario's own settings.
type ZipfFlags struct {
	Procs          int
	ZipfS          float64
	TTL            time.Duration
	Invalidate     float64
	InvalidateWith string
	Variants       string
	Phase, Settle  time.Duration
	DurableDir     string
	KeepDurable    bool
	ServerSelects  bool
}

// defaultZipfDuration replaces bench's --duration default for zipf, which
// needs several rounds of phases several TTLs long.
const defaultZipfDuration = time.Minute

// maxInvalidate bounds --invalidate, so that each process's interval
// between invalidations stays a positive duration.
const maxInvalidate = 1e6

// zipfRun is one run of the scenario, from bench's side.
type zipfRun struct {
	env      Env
	fl       Flags
	zf       ZipfFlags
	variants []string
	configs  []*config.File
	rounds   int
	dir      string
	db       *sql.DB // the source, for --server-selects
}

func RunZipf(ctx context.Context, env Env, flags *pflag.FlagSet, fl Flags, zf ZipfFlags) error {
	for _, name := range []string{"count", "baseline", "rounds"} {
		if flags.Changed(name) {
			return usageError("zipf: --%s does not apply: zipf runs for --duration and compares --variants", name)
		}
	}
	if !flags.Changed("duration") {
		fl.Duration = defaultZipfDuration
	}
	variants, err := parseVariants(zf.Variants)
	if err != nil {
		return usageError("%v", err)
	}
	switch {
	case zf.Procs < 1:
		return usageError("--procs must be at least 1")
	case !(zf.ZipfS > 1) || math.IsInf(zf.ZipfS, 0):
		return usageError("--zipf-s %g: want a number more than 1", zf.ZipfS)
	case zf.TTL <= 0:
		return usageError("--ttl must be positive")
	case !(zf.Invalidate >= 0 && zf.Invalidate <= maxInvalidate):
		return usageError("--invalidate %g: want 0 to %g per second", zf.Invalidate, float64(maxInvalidate))
	case zf.InvalidateWith != "delete" && zf.InvalidateWith != "set":
		return usageError("--invalidate-with %q: want delete or set", zf.InvalidateWith)
	case zf.Phase <= 0 || zf.Settle < 0 || zf.Settle >= zf.Phase:
		return usageError("--phase must be positive and --settle shorter than it")
	}
	round := zf.Phase * time.Duration(len(variants))
	rounds := int(fl.Duration / round)
	if rounds < 1 {
		return usageError("--duration %v holds no round: a round runs each of the %d variants for --phase %v", fl.Duration, len(variants), zf.Phase)
	}

	f, err := env.LoadConfig()
	if err != nil {
		return err
	}
	if f.Memcached == nil {
		return fmt.Errorf("scenario zipf needs a memcached section in %s", f.Path())
	}
	r := &zipfRun{env: env, fl: fl, zf: zf, variants: variants, rounds: rounds}
	for i, name := range variants {
		r.configs = append(r.configs, variantConfig(f, name, i, zf.TTL))
	}
	if r.db, err = openSource(ctx, f); err != nil {
		return err
	}
	defer r.db.Close()
	if f.Durable != nil {
		if r.dir, err = os.MkdirTemp(zf.DurableDir, "tiercache-bench-zipf-"); err != nil {
			return err
		}
		if !zf.KeepDurable {
			defer os.RemoveAll(r.dir)
		}
	}
	rep, err := r.run(ctx)
	if err != nil {
		return err
	}
	rep.Command = env.Command
	if zf.KeepDurable && r.dir != "" {
		rep.DurableDir = r.dir
		fmt.Fprintf(env.Err, "the durable files are kept in %s\n", r.dir)
	}
	return writeReport(env.Out, fl.JSON, rep, func() { printZipf(env.Out, rep) })
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

func (r *zipfRun) run(ctx context.Context) (*ZipfReport, error) {
	zf := r.zf
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var logMu sync.Mutex
	var procs []*zipfProc
	defer func() { _ = stopWorkers(procs, cancel, false) }()
	for i := range zf.Procs {
		p, err := startWorker(wctx, r.env, i, &logMu)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	for i, p := range procs {
		job := zipfJob{
			Index: i, Concurrency: r.fl.Concurrency, Keys: r.fl.Keys, KeyFormat: r.fl.KeyFormat,
			ZipfS: zf.ZipfS, TTL: zf.TTL, Invalidate: zf.Invalidate / float64(zf.Procs),
			InvalidateWith: zf.InvalidateWith, Variants: r.variants, DurableDir: r.dir,
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
	total := time.Duration(r.rounds*len(r.variants)) * zf.Phase
	start := time.Now()
	defer r.env.progress(total.Milliseconds(), "bench zipf",
		func() int64 { return time.Since(start).Milliseconds() })()
	for round := range r.rounds {
		for v := range r.variants {
			res, selects, err := r.phase(ctx, procs, zipfPhase{Round: round, Variant: v, Settle: zf.Settle, Measure: zf.Phase - zf.Settle})
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
	if r.zf.ServerSelects {
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
	if r.zf.ServerSelects {
		n, err := serverSelects(ctx, r.db)
		if err != nil {
			return merged, 0, err
		}
		selects += n
	}
	return merged, selects, nil
}
