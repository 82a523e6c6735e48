package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
)

// bench runs one scenario against a chain, and its baseline.
type bench struct {
	ctx      context.Context
	chain    *tiercache.Chain
	scenario string
	fl       Flags
	env      Env

	chainKeys, rawKeys []string // synthetic keys, or the source's keys
	raw                *memcache.Client
	stmt               *sql.Stmt

	// chainOp and rawOp run one timed operation; prepare runs untimed
	// work before the chain's operation on key i (making it miss).
	chainOp, rawOp func(i int) error
	prepare        func(i int)
}

// rawIdleConns is the raw gomemcache baseline's idle-connection pool:
// enough that it never dials under the bench's concurrency, as a user
// tuning gomemcache would set it.
const rawIdleConns = 64

func newBench(ctx context.Context, chain *tiercache.Chain, scenario string, fl Flags, env Env) (*bench, error) {
	b := &bench{ctx: ctx, chain: chain, scenario: scenario, fl: fl, env: env}
	switch scenario {
	case "hit", "durable", "multi":
		if chain.Memcached == nil {
			return nil, fmt.Errorf("scenario %s needs a memcached section in %s", scenario, chain.Config.Path())
		}
		if scenario == "hit" && fl.Memory && chain.Memory == nil {
			return nil, fmt.Errorf("hit --memory needs a memory section in %s", chain.Config.Path())
		}
		if scenario == "durable" && chain.Durable == nil {
			return nil, fmt.Errorf("scenario durable needs a durable section in %s", chain.Config.Path())
		}
		if err := b.fillSynthetic(); err != nil {
			return nil, err
		}
	case "cold", "stampede":
		b.chainKeys = sourceKeys(fl.KeyFormat, fl.Keys)
		if fl.Baseline {
			stmt, err := chain.DB.PrepareContext(ctx, chain.Config.Source.Query)
			if err != nil {
				return nil, fmt.Errorf("baseline: prepare the source query for one key: %w", err)
			}
			b.stmt = stmt
		}
	}
	b.setOps()
	return b, nil
}

// fillSynthetic writes --keys values of --value-size into every tier, and
// the baseline's keys of the same length and size into memcached.
func (b *bench) fillSynthetic() error {
	m := b.chain.Config.Memcached
	value := make([]byte, b.fl.ValueSize)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	for i := 0; i < b.fl.Keys; i++ {
		b.chainKeys = append(b.chainKeys, fmt.Sprintf("bench:c:%08d", i))
		b.rawKeys = append(b.rawKeys, fmt.Sprintf("%sbench:r:%08d", m.KeyPrefix, i))
	}
	var filled atomic.Int64
	defer b.env.progress(int64(b.fl.Keys), "filling", filled.Load)()
	for _, k := range b.chainKeys {
		if err := b.chain.Cache.Set(b.ctx, k, value); err != nil {
			return fmt.Errorf("filling the tiers: %w", err)
		}
		filled.Add(1)
	}
	if b.chain.Durable != nil {
		if err := b.chain.Durable.Flush(b.ctx); err != nil {
			return err
		}
	}
	if b.scenario == "durable" {
		for _, k := range b.chainKeys {
			if err := b.chain.Memcached.Delete(b.ctx, k); err != nil {
				return err
			}
		}
	}
	if b.fl.Baseline {
		b.raw = memcache.New(serverAddrs(b.chain.Memcached)...)
		b.raw.Timeout = memcached.DefaultTimeout
		if m.Timeout > 0 {
			b.raw.Timeout = m.Timeout.D()
		}
		b.raw.MaxIdleConns = rawIdleConns
		rawValue := make([]byte, len(value)+tier.EnvelopeOverhead) // what the chain stores
		copy(rawValue, value)
		for _, k := range b.rawKeys {
			if err := b.raw.Set(&memcache.Item{Key: k, Value: rawValue}); err != nil {
				return fmt.Errorf("baseline: filling memcached: %w", err)
			}
		}
	}
	return nil
}

func serverAddrs(mc *memcached.Tier) []string {
	var addrs []string
	for _, s := range mc.Servers() {
		addrs = append(addrs, s.Addr)
	}
	return addrs
}

// setOps picks the operations of the scenario.
func (b *bench) setOps() {
	ctx, cache := b.ctx, b.chain.Cache
	get := func(key string) error {
		_, err := cache.Get(ctx, key)
		if errors.Is(err, tier.ErrNotFound) {
			return nil // a key the source lacks is an answer, not a failure
		}
		return err
	}
	rawSQL := func(i int) error {
		rows, err := b.stmt.QueryContext(ctx, b.chainKeys[i])
		if err != nil {
			return err
		}
		for rows.Next() {
			var k, v sql.RawBytes
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		return rows.Err()
	}
	switch b.scenario {
	case "hit":
		b.chainOp = func(i int) error { return get(b.chainKeys[i]) }
		b.rawOp = func(i int) error { _, err := b.raw.Get(b.rawKeys[i]); return err }
	case "durable":
		b.prepare = func(i int) { _ = b.chain.Memcached.Delete(ctx, b.chainKeys[i]) }
		b.chainOp = func(i int) error { return get(b.chainKeys[i]) }
		b.rawOp = func(i int) error { _, err := b.raw.Get(b.rawKeys[i]); return err }
	case "cold", "stampede":
		b.prepare = func(i int) { _ = cache.Delete(ctx, b.chainKeys[i]) }
		b.chainOp = func(i int) error { return get(b.chainKeys[i]) }
		b.rawOp = rawSQL
	case "multi":
		b.chainOp = func(i int) error {
			_, err := cache.GetMulti(ctx, window(b.chainKeys, i, b.fl.MultiSize))
			return err
		}
		b.rawOp = func(i int) error {
			_, err := b.raw.GetMulti(window(b.rawKeys, i, b.fl.MultiSize))
			return err
		}
	}
}

// window is n keys starting at i, wrapping around.
func window(keys []string, i, n int) []string {
	out := make([]string, 0, n)
	for j := 0; j < n && j < len(keys); j++ {
		out = append(out, keys[(i+j)%len(keys)])
	}
	return out
}

// samples are one worker's latencies, by side and round.
type samples struct {
	lat    [2][][]time.Duration // [chain=0|baseline=1][round]
	errors [2]int64
}

func newSamples(rounds int) *samples {
	s := &samples{}
	for side := range s.lat {
		s.lat[side] = make([][]time.Duration, rounds)
	}
	return s
}

func (s *samples) time(side, round int, op func() error) {
	start := time.Now()
	err := op()
	s.lat[side][round] = append(s.lat[side][round], time.Since(start))
	if err != nil {
		s.errors[side]++
	}
}

// clock decides when the run ends and which round an operation is in.
type clock struct {
	start    time.Time
	duration time.Duration
	count    int64
	rounds   int
	issued   atomic.Int64
}

// next returns the round of the next operation, and false when the run is
// over.
func (c *clock) next() (int, bool) {
	if c.count > 0 {
		seq := c.issued.Add(1)
		if seq > c.count {
			return 0, false
		}
		return int((seq - 1) * int64(c.rounds) / c.count), true
	}
	elapsed := time.Since(c.start)
	if elapsed >= c.duration {
		return 0, false
	}
	c.issued.Add(1)
	return min(int(elapsed*time.Duration(c.rounds)/c.duration), c.rounds-1), true
}

func (b *bench) run() (*Report, error) {
	fl := b.fl
	clk := &clock{duration: fl.Duration, count: fl.Count, rounds: fl.Rounds}
	total, current := int64(fl.Duration/time.Millisecond), func() int64 { return int64(time.Since(clk.start) / time.Millisecond) }
	if fl.Count > 0 {
		total, current = fl.Count, clk.issued.Load
	}
	before := b.chain.Cache.Stats()
	clk.start = time.Now()
	finish := b.env.progress(total, "bench "+b.scenario, current)
	var all []*samples
	var burstWall [2]time.Duration
	if b.scenario == "stampede" {
		all, burstWall = b.stampedes(clk)
	} else {
		all = b.workers(clk)
	}
	finish()
	wall := time.Since(clk.start)
	if err := b.ctx.Err(); err != nil {
		return nil, err
	}
	delta := b.chain.Cache.Stats().Sub(before)

	rep := &Report{
		Scenario: b.scenario, Concurrency: fl.Concurrency, Keys: fl.Keys, ValueSize: fl.ValueSize,
		Rounds: fl.Rounds, WallSeconds: wall.Seconds(), AnsweredBy: map[string]int64{},
		SQLStatements: delta.Loader.Statements,
	}
	if b.scenario == "multi" {
		rep.MultiSize = fl.MultiSize
	}
	for _, t := range delta.Tiers {
		if t.Hits > 0 {
			rep.AnsweredBy[t.Name] = t.Hits
		}
	}
	if delta.Loader.Keys > 0 {
		rep.AnsweredBy["sql"] = delta.Loader.Keys
	}
	if delta.SharedWaits > 0 {
		rep.AnsweredBy["shared"] = delta.SharedWaits
	}
	rep.Chain = summarize(all, 0, fl.Rounds, fl.Concurrency, burstWall[0])
	if fl.Baseline {
		base := summarize(all, 1, fl.Rounds, fl.Concurrency, burstWall[1])
		rep.Baseline = &base
		rep.BaselineName = "gomemcache"
		if b.rawOp != nil && b.stmt != nil {
			rep.BaselineName = "sql"
		}
		rep.Ratio = ratios(rep.Chain, base)
	}
	return rep, nil
}

// workers runs --concurrency workers, each doing chain and baseline
// operations in turn, the order flipped every other operation so neither
// side always runs on a connection the other just warmed.
func (b *bench) workers(clk *clock) []*samples {
	all := make([]*samples, b.fl.Concurrency)
	var wg sync.WaitGroup
	for w := range all {
		s := newSamples(b.fl.Rounds)
		all[w] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for n := 0; b.ctx.Err() == nil; n++ {
				round, ok := clk.next()
				if !ok {
					return
				}
				i := rng.IntN(len(b.chainKeys))
				chainSide := func() {
					if b.prepare != nil {
						b.prepare(i)
					}
					s.time(0, round, func() error { return b.chainOp(i) })
				}
				if !b.fl.Baseline {
					chainSide()
					continue
				}
				if n%2 == 0 {
					chainSide()
					s.time(1, round, func() error { return b.rawOp(i) })
				} else {
					s.time(1, round, func() error { return b.rawOp(i) })
					chainSide()
				}
			}
		}()
	}
	wg.Wait()
	return all
}

// stampedes releases --concurrency callers at once on one cold key, then
// (with --baseline) as many raw SQL queries at once, and so on. Each
// caller's operation counts against --count. It returns, by side, the time
// the stampedes took from release to the last caller's answer.
func (b *bench) stampedes(clk *clock) ([]*samples, [2]time.Duration) {
	var walls [2]time.Duration
	c := b.fl.Concurrency
	all := make([]*samples, c)
	for i := range all {
		all[i] = newSamples(b.fl.Rounds)
	}
	burst := func(side, round int, op func() error) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := 0; w < c; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				all[w].time(side, round, op)
			}()
		}
		began := time.Now()
		close(start)
		wg.Wait()
		walls[side] += time.Since(began)
	}
	for n := 0; b.ctx.Err() == nil; n++ {
		round, ok := clk.next()
		if !ok {
			break
		}
		clk.issued.Add(int64(c - 1))
		i := n % len(b.chainKeys)
		b.prepare(i)
		burst(0, round, func() error { return b.chainOp(i) })
		if b.fl.Baseline {
			burst(1, round, func() error { return b.rawOp(i) })
		}
	}
	return all, walls
}

// summarize merges the workers' samples of one side. Throughput is
// operations over wall when it is known (stampedes, whose callers
// overlap), and otherwise over the time spent in them per worker.
func summarize(all []*samples, side, rounds, workers int, wall time.Duration) sideReport {
	var merged []time.Duration
	var busy time.Duration
	r := sideReport{RoundP50Ns: make([]int64, rounds)}
	for round := 0; round < rounds; round++ {
		var inRound []time.Duration
		for _, s := range all {
			inRound = append(inRound, s.lat[side][round]...)
		}
		slices.Sort(inRound)
		r.RoundP50Ns[round] = int64(percentile(inRound, 0.5))
		merged = append(merged, inRound...)
	}
	for _, s := range all {
		r.Errors += s.errors[side]
	}
	for _, d := range merged {
		busy += d
	}
	slices.Sort(merged)
	r.Ops = int64(len(merged))
	switch {
	case wall > 0:
		r.OpsPerSec = float64(r.Ops) / wall.Seconds()
	case busy > 0:
		r.OpsPerSec = float64(r.Ops) / (busy.Seconds() / float64(workers))
	}
	r.P50Ns = int64(percentile(merged, 0.5))
	r.P90Ns = int64(percentile(merged, 0.9))
	r.P99Ns = int64(percentile(merged, 0.99))
	r.P999Ns = int64(percentile(merged, 0.999))
	return r
}

// sourceKeys are the keys of the source's rows 1 to n, in format.
func sourceKeys(format string, n int) []string {
	keys := make([]string, 0, n)
	for i := 1; i <= n; i++ {
		keys = append(keys, fmt.Sprintf(format, i))
	}
	return keys
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ratios(chain, base sideReport) *ratioReport {
	r := &ratioReport{P99: ratio(float64(chain.P99Ns), float64(base.P99Ns)), OpsPerSec: ratio(chain.OpsPerSec, base.OpsPerSec)}
	var perRound []float64
	for i := range chain.RoundP50Ns {
		if chain.RoundP50Ns[i] > 0 && base.RoundP50Ns[i] > 0 {
			perRound = append(perRound, ratio(float64(chain.RoundP50Ns[i]), float64(base.RoundP50Ns[i])))
		}
	}
	r.RoundP50, r.P50 = perRound, median(perRound)
	return r
}

// cleanup deletes the synthetic keys from memcached.
func (b *bench) cleanup() {
	ctx := context.WithoutCancel(b.ctx)
	if b.scenario == "hit" || b.scenario == "durable" || b.scenario == "multi" {
		for _, k := range b.chainKeys {
			_ = b.chain.Memcached.Delete(ctx, k)
		}
	}
	if b.raw != nil {
		for _, k := range b.rawKeys {
			_ = b.raw.Delete(k)
		}
		_ = b.raw.Close()
	}
	if b.stmt != nil {
		_ = b.stmt.Close()
	}
}
