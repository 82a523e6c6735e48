package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// ZipfReport is what bench zipf prints; --json prints it as is.
type ZipfReport struct {
	Command     string  `json:"command"`
	Scenario    string  `json:"scenario"`
	Procs       int     `json:"procs"`
	Concurrency int     `json:"concurrency"`
	Keys        int     `json:"keys"`
	ZipfS       float64 `json:"zipf_s"`
	TTLSeconds  float64 `json:"ttl_seconds"`
	// InvalidatePerSec is --invalidate, over all processes.
	InvalidatePerSec float64 `json:"invalidate_per_sec"`
	InvalidateWith   string  `json:"invalidate_with,omitempty"`
	PhaseSeconds     float64 `json:"phase_seconds"`
	SettleSeconds    float64 `json:"settle_seconds"`
	Rounds           int     `json:"rounds"`
	WallSeconds      float64 `json:"wall_seconds"`
	// Variants are the columns, in --variants order; Ratios compare the
	// first with each of the others.
	Variants []zipfSide  `json:"variants"`
	Ratios   []zipfRatio `json:"ratios"`
	// Phases are the phases in the order they ran.
	Phases     []zipfPhaseReport `json:"phases"`
	Notes      []string          `json:"notes,omitempty"`
	DurableDir string            `json:"durable_dir,omitempty"`
}

// zipfSide is one variant's figures, over all its phases and processes.
// Rates are per second of measured time, summed over the processes.
type zipfSide struct {
	Name            string  `json:"name"`
	Settings        string  `json:"settings"`
	MeasuredSeconds float64 `json:"measured_seconds"`
	// SQLPerSec is SQL statements (loader calls) per second, the
	// database's load; KeysLoadedPerSec, the keys they asked for.
	SQLPerSec        float64 `json:"sql_statements_per_sec"`
	KeysLoadedPerSec float64 `json:"keys_loaded_per_sec"`
	GetsPerSec       float64 `json:"gets_per_sec"`
	// Latencies of whole Gets, each the upper edge of a 6% wide bucket.
	P50Ns  int64 `json:"p50_ns"`
	P99Ns  int64 `json:"p99_ns"`
	P999Ns int64 `json:"p999_ns"`
	// TopHitRatio is memcached's hits over its lookups, as /stats has it.
	TopHitRatio float64 `json:"top_hit_ratio"`
	// ServerSelectsPerSec is the database server's count (--server-selects),
	// every client's SELECTs.
	ServerSelectsPerSec *float64 `json:"server_selects_per_sec,omitempty"`
	// Gets, Errors and Invalidations are counted by the workers.
	Gets          int64    `json:"gets"`
	Errors        int64    `json:"errors"`
	ErrorSamples  []string `json:"error_samples,omitempty"`
	Invalidations int64    `json:"invalidations"`
	// Counters are the chains' own, summed.
	Counters zipfCounters `json:"counters"`
	// RoundSQLPerSec are SQL statements/s round by round.
	RoundSQLPerSec []float64 `json:"round_sql_statements_per_sec"`
}

// zipfRatio is the first variant's figures over another's.
type zipfRatio struct {
	// Of is "FIRST/OTHER".
	Of               string  `json:"of"`
	SQLPerSec        float64 `json:"sql_statements_per_sec"`
	KeysLoadedPerSec float64 `json:"keys_loaded_per_sec"`
	GetsPerSec       float64 `json:"gets_per_sec"`
	P50              float64 `json:"p50"`
	P99              float64 `json:"p99"`
	P999             float64 `json:"p999"`
	TopHitRatio      float64 `json:"top_hit_ratio"`
	// ServerSelectsPerSec compares the server's counts (--server-selects).
	ServerSelectsPerSec float64 `json:"server_selects_per_sec,omitempty"`
	// RoundSQLPerSec are the SQL statements/s ratios of each round, and
	// SQLPerSecMedian their median, which noise that hit only some rounds
	// moves less than the whole run's ratio.
	RoundSQLPerSec  []float64 `json:"round_sql_statements_per_sec"`
	SQLPerSecMedian float64   `json:"sql_statements_per_sec_median"`
}

// zipfPhaseReport is one phase, over all processes.
type zipfPhaseReport struct {
	Round               int      `json:"round"`
	Variant             string   `json:"variant"`
	GetsPerSec          float64  `json:"gets_per_sec"`
	SQLPerSec           float64  `json:"sql_statements_per_sec"`
	P99Ns               int64    `json:"p99_ns"`
	Errors              int64    `json:"errors"`
	ServerSelectsPerSec *float64 `json:"server_selects_per_sec,omitempty"`
}

// zipfAccumulator adds up the phases as they end.
type zipfAccumulator struct {
	run     *zipfRun
	totals  []zipfPhaseResult
	selects []int64     // -1: not counted
	rounds  [][]float64 // statements/s of each phase of each variant
	phases  []zipfPhaseReport
}

func newZipfAccumulator(r *zipfRun) *zipfAccumulator {
	n := len(r.variants)
	a := &zipfAccumulator{run: r, totals: make([]zipfPhaseResult, n), selects: make([]int64, n), rounds: make([][]float64, n)}
	return a
}

// measure is the measured part of one phase.
func (a *zipfAccumulator) measure() time.Duration { return a.run.zf.Phase - a.run.zf.Settle }

func (a *zipfAccumulator) phase(round, variant int, res zipfPhaseResult, selects int64) {
	secs := a.measure().Seconds()
	a.totals[variant].add(res)
	sql := float64(res.Counters.Statements) / secs
	a.rounds[variant] = append(a.rounds[variant], sql)
	pr := zipfPhaseReport{Round: round, Variant: a.run.variants[variant], GetsPerSec: float64(res.Gets) / secs,
		SQLPerSec: sql, P99Ns: int64(res.Latency.quantile(0.99)), Errors: res.Errors}
	if selects >= 0 && a.selects[variant] >= 0 {
		a.selects[variant] += selects
		perSec := float64(selects) / secs
		pr.ServerSelectsPerSec = &perSec
	} else {
		a.selects[variant] = -1
	}
	a.phases = append(a.phases, pr)
}

func (a *zipfAccumulator) report(wall time.Duration) *ZipfReport {
	r, zf := a.run, a.run.zf
	rep := &ZipfReport{
		Scenario: "zipf", Procs: zf.Procs, Concurrency: r.fl.Concurrency, Keys: r.fl.Keys, ZipfS: zf.ZipfS,
		TTLSeconds: zf.TTL.Seconds(), InvalidatePerSec: zf.Invalidate, PhaseSeconds: zf.Phase.Seconds(),
		SettleSeconds: zf.Settle.Seconds(), Rounds: r.rounds, WallSeconds: wall.Seconds(), Phases: a.phases,
	}
	if zf.Invalidate > 0 {
		rep.InvalidateWith = zf.InvalidateWith
	}
	for i, name := range r.variants {
		t := a.totals[i]
		secs := a.measure().Seconds() * float64(len(a.rounds[i])) // one round per phase
		s := zipfSide{
			Name: name, Settings: describeVariant(r.configs[i]), MeasuredSeconds: secs,
			SQLPerSec:        float64(t.Counters.Statements) / secs,
			KeysLoadedPerSec: float64(t.Counters.KeysLoaded) / secs,
			GetsPerSec:       float64(t.Gets) / secs,
			P50Ns:            int64(t.Latency.quantile(0.5)),
			P99Ns:            int64(t.Latency.quantile(0.99)),
			P999Ns:           int64(t.Latency.quantile(0.999)),
			Gets:             t.Gets, Errors: t.Errors, ErrorSamples: t.ErrorSamples,
			Invalidations: t.Invalidations, Counters: t.Counters, RoundSQLPerSec: a.rounds[i],
		}
		if n := t.Counters.TopHits + t.Counters.TopMisses; n > 0 {
			s.TopHitRatio = float64(t.Counters.TopHits) / float64(n)
		}
		if a.selects[i] >= 0 {
			perSec := float64(a.selects[i]) / secs
			s.ServerSelectsPerSec = &perSec
		}
		rep.Variants = append(rep.Variants, s)
	}
	first := rep.Variants[0]
	for i, other := range rep.Variants[1:] {
		rt := zipfRatio{
			Of:               first.Name + "/" + other.Name,
			SQLPerSec:        ratio(first.SQLPerSec, other.SQLPerSec),
			KeysLoadedPerSec: ratio(first.KeysLoadedPerSec, other.KeysLoadedPerSec),
			GetsPerSec:       ratio(first.GetsPerSec, other.GetsPerSec),
			P50:              ratio(float64(first.P50Ns), float64(other.P50Ns)),
			P99:              ratio(float64(first.P99Ns), float64(other.P99Ns)),
			P999:             ratio(float64(first.P999Ns), float64(other.P999Ns)),
			TopHitRatio:      ratio(first.TopHitRatio, other.TopHitRatio),
		}
		if first.ServerSelectsPerSec != nil && other.ServerSelectsPerSec != nil {
			rt.ServerSelectsPerSec = ratio(*first.ServerSelectsPerSec, *other.ServerSelectsPerSec)
		}
		for round := range a.rounds[0] {
			if q := ratio(a.rounds[0][round], a.rounds[i+1][round]); q > 0 {
				rt.RoundSQLPerSec = append(rt.RoundSQLPerSec, q)
			}
		}
		rt.SQLPerSecMedian = median(rt.RoundSQLPerSec)
		rep.Ratios = append(rep.Ratios, rt)
	}
	for i := range r.configs {
		for j := range i {
			if rep.Variants[i].Settings == rep.Variants[j].Settings {
				rep.Notes = append(rep.Notes, fmt.Sprintf("variants %s and %s are the same chain here: "+
					"their difference is the run's noise", r.variants[j], r.variants[i]))
			}
		}
	}
	for _, s := range rep.Variants {
		if s.Counters.KeysLoaded > 0 && s.Counters.NotFound*2 > s.Counters.KeysLoaded {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: the source lacks %d of the %d keys loaded: "+
				"check --keys and --key-format against its rows", s.Name, s.Counters.NotFound, s.Counters.KeysLoaded))
			break
		}
	}
	return rep
}

// ratio is a/b to three decimals, 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return math.Round(a/b*1000) / 1000
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return math.Round((s[len(s)/2-1]+s[len(s)/2])/2*1000) / 1000
}

func printZipf(w io.Writer, r *ZipfReport) {
	fmt.Fprintf(w, "%s\n", r.Command)
	inval := "no invalidations"
	if r.InvalidatePerSec > 0 {
		inval = fmt.Sprintf("%g invalidations/s (%s)", r.InvalidatePerSec, r.InvalidateWith)
	}
	fmt.Fprintf(w, "scenario zipf: %s × %s, %s of Zipf popularity (s %g), TTL %v, %s\n",
		plural(r.Procs, "process", "processes"), plural(r.Concurrency, "goroutine", "goroutines"),
		plural(r.Keys, "key", "keys"), r.ZipfS, secondsDur(r.TTLSeconds), inval)
	fmt.Fprintf(w, "%s of %d phases of %v (the first %v of each not measured), %.1fs\n",
		plural(r.Rounds, "round", "rounds"), len(r.Variants), secondsDur(r.PhaseSeconds), secondsDur(r.SettleSeconds), r.WallSeconds)
	width := len("configured")
	for _, s := range r.Variants {
		width = max(width, len(s.Name))
		fmt.Fprintf(w, "  %s: %s\n", s.Name, s.Settings)
	}
	for _, rt := range r.Ratios {
		width = max(width, len(rt.Of))
	}
	fmt.Fprintln(w)

	const label = 22
	fmt.Fprintf(w, "%-*s", label, "")
	for _, s := range r.Variants {
		fmt.Fprintf(w, " %*s", width, s.Name)
	}
	for _, rt := range r.Ratios {
		fmt.Fprintf(w, " %*s", width, rt.Of)
	}
	fmt.Fprintln(w)
	row := func(name string, value func(zipfSide) string, rto func(zipfRatio) float64) {
		fmt.Fprintf(w, "%-*s", label, name)
		for _, s := range r.Variants {
			fmt.Fprintf(w, " %*s", width, value(s))
		}
		for _, rt := range r.Ratios {
			q := "—"
			if rto != nil && rto(rt) > 0 {
				q = fmt.Sprintf("%.3f×", rto(rt))
			}
			fmt.Fprintf(w, " %*s", width, q)
		}
		fmt.Fprintln(w)
	}
	rate := func(v float64) string { return fmt.Sprintf("%.1f", v) }
	count := func(n int64) string { return fmt.Sprintf("%d", n) }
	row("SQL statements/s", func(s zipfSide) string { return rate(s.SQLPerSec) }, func(rt zipfRatio) float64 { return rt.SQLPerSec })
	if r.Variants[0].ServerSelectsPerSec != nil {
		row("server SELECTs/s (all)", func(s zipfSide) string {
			if s.ServerSelectsPerSec == nil {
				return "—"
			}
			return rate(*s.ServerSelectsPerSec)
		}, func(rt zipfRatio) float64 { return rt.ServerSelectsPerSec })
	}
	row("keys loaded/s", func(s zipfSide) string { return rate(s.KeysLoadedPerSec) }, func(rt zipfRatio) float64 { return rt.KeysLoadedPerSec })
	row("Gets/s", func(s zipfSide) string { return rate(s.GetsPerSec) }, func(rt zipfRatio) float64 { return rt.GetsPerSec })
	row("Get p50", func(s zipfSide) string { return dur(s.P50Ns) }, func(rt zipfRatio) float64 { return rt.P50 })
	row("Get p99", func(s zipfSide) string { return dur(s.P99Ns) }, func(rt zipfRatio) float64 { return rt.P99 })
	row("Get p99.9", func(s zipfSide) string { return dur(s.P999Ns) }, func(rt zipfRatio) float64 { return rt.P999 })
	row("memcached hit ratio", func(s zipfSide) string { return fmt.Sprintf("%.4f", s.TopHitRatio) }, func(rt zipfRatio) float64 { return rt.TopHitRatio })
	row("memcached errors", func(s zipfSide) string { return count(s.Counters.TopErrors) }, nil)
	row("stale served", func(s zipfSide) string { return count(s.Counters.StaleServed) }, nil)
	row("lease waits", func(s zipfSide) string { return count(s.Counters.LeaseWaits) }, nil)
	row("lease timeouts", func(s zipfSide) string { return count(s.Counters.LeaseTimeouts) }, nil)
	row("lease fallbacks", func(s zipfSide) string { return count(s.Counters.LeaseFallbacks) }, nil)
	row("early refreshes", func(s zipfSide) string { return count(s.Counters.EarlyRefreshes) }, nil)
	row("invalidations", func(s zipfSide) string { return count(s.Invalidations) }, nil)
	row("errors", func(s zipfSide) string { return count(s.Errors) }, nil)

	fmt.Fprintln(w)
	for _, rt := range r.Ratios {
		var rounds []string
		for _, q := range rt.RoundSQLPerSec {
			rounds = append(rounds, fmt.Sprintf("%.3f", q))
		}
		fmt.Fprintf(w, "SQL statements/s %s: median of rounds %.3f× (%s)\n", rt.Of, rt.SQLPerSecMedian, strings.Join(rounds, " "))
	}
	for _, s := range r.Variants {
		for _, msg := range s.ErrorSamples {
			fmt.Fprintf(w, "error (%s): %s\n", s.Name, msg)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func secondsDur(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}
