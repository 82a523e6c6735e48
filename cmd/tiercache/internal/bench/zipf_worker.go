package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/tier"
)

// A worker process of the zipf scenario is this program run again as
// "tiercache bench-worker -c FILE", a hidden command. It reads a zipfJob
// as the first line of its standard input, builds one chain per variant,
// writes "ready", then runs one phase per zipfPhase line it reads and
// answers each with a zipfPhaseResult line, until its standard input ends.
// Its standard error carries its log.

// WorkerEnv is set in a worker's environment. The program ignores it;
// a test binary standing in for the program (os.Executable is then the
// test binary) runs the command line instead of its tests when it is set.
const WorkerEnv = "TIERCACHE_BENCH_WORKER"

// zipfJob is a worker's part of the run.
type zipfJob struct {
	Index       int           `json:"index"`
	Concurrency int           `json:"concurrency"`
	Keys        int           `json:"keys"`
	KeyFormat   string        `json:"key_format"`
	ZipfS       float64       `json:"zipf_s"`
	TTL         time.Duration `json:"ttl"`
	// Invalidate is this process's share of the invalidations per second.
	Invalidate     float64  `json:"invalidate"`
	InvalidateWith string   `json:"invalidate_with"`
	Variants       []string `json:"variants"`
	// DurableDir holds the worker's durable files, one per variant.
	DurableDir string `json:"durable_dir"`
}

// zipfPhase tells the workers to run one variant: Gets during Settle are
// not measured, those begun in the Measure after it are.
type zipfPhase struct {
	Round   int           `json:"round"`
	Variant int           `json:"variant"`
	Settle  time.Duration `json:"settle"`
	Measure time.Duration `json:"measure"`
}

// zipfPhaseResult is what one worker measured in one phase.
type zipfPhaseResult struct {
	// Gets and Errors count the Gets begun in the measured part; a key
	// the source lacks is an answer, not an error.
	Gets   int64 `json:"gets"`
	Errors int64 `json:"errors"`
	// Invalidations were done in the measured part; a failed one counts
	// in Errors.
	Invalidations int64 `json:"invalidations"`
	// ErrorSamples are the first few distinct error messages.
	ErrorSamples []string     `json:"error_samples,omitempty"`
	Latency      histogram    `json:"latency"`
	Counters     zipfCounters `json:"counters"`
}

// maxErrorSamples bounds the error messages a worker reports per phase.
const maxErrorSamples = 5

func (r *zipfPhaseResult) fail(err error) {
	r.Errors++
	r.sample(err.Error())
}

// sample keeps msg among the error samples, unless it is there already or
// there are enough.
func (r *zipfPhaseResult) sample(msg string) {
	if len(r.ErrorSamples) < maxErrorSamples && !slices.Contains(r.ErrorSamples, msg) {
		r.ErrorSamples = append(r.ErrorSamples, msg)
	}
}

func (r *zipfPhaseResult) add(o zipfPhaseResult) {
	r.Gets += o.Gets
	r.Errors += o.Errors
	r.Invalidations += o.Invalidations
	for _, msg := range o.ErrorSamples {
		r.sample(msg)
	}
	r.Latency.add(o.Latency)
	r.Counters.add(o.Counters)
}

// zipfCounters are what a chain's Stats say about a phase.
type zipfCounters struct {
	// Gets are keys asked for through Get. TopHits and TopMisses are the
	// memcached lookups that found a fresh value and those that did not
	// (a load may look again); StaleServed, expired values answered while
	// they were refreshed (stale-while-revalidate), each also a miss.
	// TopErrors are failed memcached operations, each a miss: a run that
	// has them measured a struggling memcached too.
	Gets        int64 `json:"gets"`
	TopHits     int64 `json:"top_hits"`
	TopMisses   int64 `json:"top_misses"`
	TopErrors   int64 `json:"top_errors"`
	StaleServed int64 `json:"stale_served"`
	// SharedWaits are callers that joined a load of their own process.
	SharedWaits int64 `json:"shared_waits"`
	// Statements are SQL statements (loader calls); KeysLoaded, the keys
	// they asked for; NotFound, keys the source lacks.
	Statements int64 `json:"sql_statements"`
	KeysLoaded int64 `json:"keys_loaded"`
	NotFound   int64 `json:"not_found"`
	LoadErrors int64 `json:"load_errors"`
	// Lease counters: see tier.LeaseStats.
	LeaseRequests  int64 `json:"lease_requests"`
	LeaseWaits     int64 `json:"lease_waits"`
	LeaseWaitHits  int64 `json:"lease_wait_hits"`
	LeaseTimeouts  int64 `json:"lease_timeouts"`
	LeaseFallbacks int64 `json:"lease_fallbacks"`
	// EarlyRefreshes are hits that drew a refresh before expiry;
	// RefreshesDone, background refreshes (early or stale) that wrote a
	// new value.
	EarlyRefreshes int64 `json:"early_refreshes"`
	RefreshesDone  int64 `json:"refreshes_done"`
	// Invalidations are keys passed to Set and Delete.
	Invalidations int64 `json:"invalidations"`
}

func countersOf(d tier.Stats) zipfCounters {
	c := zipfCounters{
		Gets: d.Gets, StaleServed: d.Refresh.StaleServed, SharedWaits: d.SharedWaits,
		Statements: d.Loader.Statements, KeysLoaded: d.Loader.Keys, NotFound: d.Loader.NotFound,
		LoadErrors:    d.Loader.Errors,
		LeaseRequests: d.Leases.Requests, LeaseWaits: d.Leases.Waits, LeaseWaitHits: d.Leases.WaitHits,
		LeaseTimeouts: d.Leases.Timeouts, LeaseFallbacks: d.Leases.Fallbacks,
		EarlyRefreshes: d.Refresh.Early, RefreshesDone: d.Refresh.Done, Invalidations: d.Invalidations,
	}
	for _, t := range d.Tiers {
		if t.Name == "memcached" { // below the memory tier, when there is one
			c.TopHits, c.TopMisses, c.TopErrors = t.Hits, t.Misses, t.Errors
			break
		}
	}
	return c
}

func (c *zipfCounters) add(o zipfCounters) {
	c.Gets += o.Gets
	c.TopHits += o.TopHits
	c.TopMisses += o.TopMisses
	c.TopErrors += o.TopErrors
	c.StaleServed += o.StaleServed
	c.SharedWaits += o.SharedWaits
	c.Statements += o.Statements
	c.KeysLoaded += o.KeysLoaded
	c.NotFound += o.NotFound
	c.LoadErrors += o.LoadErrors
	c.LeaseRequests += o.LeaseRequests
	c.LeaseWaits += o.LeaseWaits
	c.LeaseWaitHits += o.LeaseWaitHits
	c.LeaseTimeouts += o.LeaseTimeouts
	c.LeaseFallbacks += o.LeaseFallbacks
	c.EarlyRefreshes += o.EarlyRefreshes
	c.RefreshesDone += o.RefreshesDone
	c.Invalidations += o.Invalidations
}

// workerReady is a worker's first line once its chains are built.
const workerReady = "ready"

// zipfWorker is one worker process's state.
type zipfWorker struct {
	job    zipfJob
	keys   []string
	chains []*tiercache.Chain
	// values remembers a value read for each key, which an invalidation
	// by Set writes back, as an application writes the row it updated.
	values sync.Map
}

// RunWorker is a zipf worker process: it reads its job and phases from
// env.In and answers on env.Out.
func RunWorker(ctx context.Context, env Env) error {
	f, err := env.LoadConfig()
	if err != nil {
		return err
	}
	in := bufio.NewReader(env.In)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("bench-worker: reading the job: %w", err)
	}
	w := &zipfWorker{}
	if err := json.Unmarshal(line, &w.job); err != nil {
		return fmt.Errorf("bench-worker: the job: %w", err)
	}
	if f.Memcached == nil || w.job.Keys < 1 || w.job.Concurrency < 1 || w.job.ZipfS <= 1 || len(w.job.Variants) == 0 {
		return fmt.Errorf("bench-worker: job %s does not fit %s", line, f.Path())
	}
	w.keys = sourceKeys(w.job.KeyFormat, w.job.Keys)
	defer func() {
		for _, c := range w.chains {
			c.Close()
		}
	}()
	for i, name := range w.job.Variants {
		vf := variantConfig(f, name, i, w.job.TTL)
		opts := env.ChainOptions(f)
		if vf.Durable != nil {
			opts = append(opts, scratchDurable(filepath.Join(w.job.DurableDir, fmt.Sprintf("proc%d-variant%d.db", w.job.Index, i)))...)
		}
		chain, err := tiercache.Build(vf, opts...)
		if err != nil {
			return fmt.Errorf("variant %s: %w", name, err)
		}
		w.chains = append(w.chains, chain)
	}

	// Commands are read on a goroutine of their own so that a signal
	// ends the worker while it waits for one; the parent's end closes
	// standard input, which ends the worker too.
	phases := make(chan zipfPhase)
	readErr := make(chan error, 1)
	go func() {
		defer close(phases)
		dec := json.NewDecoder(in)
		for {
			var p zipfPhase
			if err := dec.Decode(&p); err != nil {
				if !errors.Is(err, io.EOF) {
					readErr <- fmt.Errorf("bench-worker: reading a phase: %w", err)
				}
				return
			}
			select {
			case phases <- p:
			case <-ctx.Done():
				return
			}
		}
	}()
	out := json.NewEncoder(env.Out)
	if _, err := fmt.Fprintln(env.Out, workerReady); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case p, ok := <-phases:
			if !ok {
				select {
				case err := <-readErr:
					return err
				default:
					return nil
				}
			}
			if p.Variant < 0 || p.Variant >= len(w.chains) {
				return fmt.Errorf("bench-worker: phase of variant %d, of %d", p.Variant, len(w.chains))
			}
			res, err := w.phase(ctx, p)
			if err != nil {
				return err
			}
			if err := out.Encode(res); err != nil {
				return err
			}
		}
	}
}

// seed makes the random keys of goroutine g in round r of this process the
// same for every variant, so that the variants of a round read the same
// sequence of keys.
func (w *zipfWorker) seed(g, round int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(w.job.Index)<<32|uint64(g), uint64(round)))
}

func (w *zipfWorker) zipf(g, round int) *rand.Zipf {
	return rand.NewZipf(w.seed(g, round), w.job.ZipfS, 1, uint64(len(w.keys)-1))
}

// phase runs the job's goroutines (and its invalidations) on one chain.
func (w *zipfWorker) phase(ctx context.Context, p zipfPhase) (zipfPhaseResult, error) {
	cache := w.chains[p.Variant].Cache
	remember := w.job.InvalidateWith == "set"
	from := time.Now().Add(p.Settle)
	end := from.Add(p.Measure)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		res    zipfPhaseResult
		before = make(chan tier.Stats, 1)
	)
	wg.Go(func() {
		t := time.NewTimer(time.Until(from))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		before <- cache.Stats()
	})
	for g := range w.job.Concurrency {
		wg.Go(func() {
			zipf := w.zipf(g, p.Round)
			var mine zipfPhaseResult
			for ctx.Err() == nil {
				key := w.keys[zipf.Uint64()]
				start := time.Now()
				if !start.Before(end) {
					break
				}
				v, err := cache.Get(ctx, key)
				if err == nil && remember {
					if _, ok := w.values.Load(key); !ok {
						w.values.Store(key, v)
					}
				}
				if start.Before(from) {
					continue
				}
				mine.Latency.record(time.Since(start))
				mine.Gets++
				if err != nil && !errors.Is(err, tier.ErrNotFound) {
					mine.fail(err)
				}
			}
			mu.Lock()
			res.add(mine)
			mu.Unlock()
		})
	}
	if w.job.Invalidate > 0 {
		wg.Go(func() {
			mine := w.invalidate(ctx, cache, p, from, end)
			mu.Lock()
			res.add(mine)
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.Counters = countersOf(cache.Stats().Sub(<-before))
	return res, nil
}

// invalidate deletes, or sets, Zipf-chosen keys at the job's rate until
// end: the application updating popular rows, which sends every process
// reading them back to the source at once.
func (w *zipfWorker) invalidate(ctx context.Context, cache *tier.Cache, p zipfPhase, from, end time.Time) zipfPhaseResult {
	var res zipfPhaseResult
	zipf := w.zipf(w.job.Concurrency, p.Round)
	tick := time.NewTicker(time.Duration(float64(time.Second) / w.job.Invalidate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return res
		case <-tick.C:
		}
		now := time.Now()
		if !now.Before(end) {
			return res
		}
		key := w.keys[zipf.Uint64()]
		var err error
		if w.job.InvalidateWith == "set" {
			v, ok := w.values.Load(key)
			if !ok {
				continue // not read yet: there is no row to write back
			}
			err = cache.Set(ctx, key, v.([]byte))
		} else {
			err = cache.Delete(ctx, key)
		}
		if now.Before(from) {
			continue
		}
		res.Invalidations++
		if err != nil {
			res.fail(err)
		}
	}
}
