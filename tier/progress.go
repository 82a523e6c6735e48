package tier

import (
	"sync"
	"sync/atomic"
	"time"
)

// WarmupProgress is how far one warmup has come. Progress is measured with
// the wall clock, not the chain's Clock: it times work, it decides no TTL.
type WarmupProgress struct {
	// Trigger says what started the warmup: "Warmup" for a call, or the
	// restart behind an automatic one ("127.0.0.1:11211 restarted").
	Trigger string
	Started time.Time
	Elapsed time.Duration
	// Done is set once the warmup has ended; Err says why it ended early.
	Done bool
	Err  error
	// Scanned entries were read from the durable tier. After one node of
	// several restarted, the entries placed on the others are scanned and
	// passed over, counted nowhere else.
	Scanned int64
	// Sent entries were handed to the tiers above. Each becomes Written,
	// Present (live traffic stored the key first) or Failed, or Skipped
	// when the tier cannot hold it or an invalidation raced with it.
	Sent int64
	// Skipped also counts the entries not sent: expired, negative, or
	// invalidated since the warmup began.
	Written, Present, Skipped, Failed int64
	// Total estimates how many entries the scan reads: what the durable
	// tier held when the warmup began, 0 when it cannot tell (Sized).
	Total int64
	// Rate is entries sent per second so far.
	Rate float64
	// ETA estimates the time left from the scan's pace through Total; 0
	// when it is unknown or the warmup is done.
	ETA time.Duration
}

// Fraction is how much of the scan is done, from 0 to 1, or -1 when Total
// is unknown. A progress bar shows it.
func (p WarmupProgress) Fraction() float64 {
	switch {
	case p.Done:
		return 1
	case p.Total <= 0:
		return -1
	default:
		return min(1, float64(p.Scanned)/float64(p.Total))
	}
}

// warmRun is one warmup's live counters. Each counter also adds to the
// cache's lifetime totals. It is safe for concurrent use.
type warmRun struct {
	trigger string
	started time.Time
	total   int64

	scanned, sent, written, present, skipped, failed counterPair

	mu      sync.Mutex // guards the fields below
	elapsed time.Duration
	done    bool
	err     error
}

func (c *Cache) newRun(trigger string, total int64) *warmRun {
	r := &warmRun{trigger: trigger, started: time.Now(), total: total}
	r.scanned.global, r.sent.global = &c.ctr.warmScanned, &c.ctr.warmSent
	r.written.global, r.present.global = &c.ctr.warmWritten, &c.ctr.warmPresent
	r.skipped.global, r.failed.global = &c.ctr.warmSkipped, &c.ctr.warmFailed
	return r
}

// finish records the end of the run.
func (r *warmRun) finish(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.elapsed, r.done, r.err = time.Since(r.started), true, err
}

func (r *warmRun) progress() WarmupProgress {
	r.mu.Lock()
	elapsed, done, err := r.elapsed, r.done, r.err
	r.mu.Unlock()
	if !done {
		elapsed = time.Since(r.started)
	}
	p := WarmupProgress{
		Trigger: r.trigger,
		Started: r.started,
		Elapsed: elapsed,
		Done:    done,
		Err:     err,
		Scanned: r.scanned.local.Load(),
		Sent:    r.sent.local.Load(),
		Written: r.written.local.Load(),
		Present: r.present.local.Load(),
		Skipped: r.skipped.local.Load(),
		Failed:  r.failed.local.Load(),
		Total:   r.total,
	}
	if secs := elapsed.Seconds(); secs > 0 {
		p.Rate = float64(p.Sent) / secs
		if !done && p.Total > p.Scanned && p.Scanned > 0 {
			perEntry := elapsed / time.Duration(p.Scanned)
			p.ETA = perEntry * time.Duration(p.Total-p.Scanned)
		}
	}
	return p
}

// stats is the run's counters in the form Warmup returns.
func (r *warmRun) stats() WarmupStats {
	p := r.progress()
	return WarmupStats{
		Runs:    1,
		Scanned: p.Scanned,
		Sent:    p.Sent,
		Written: p.Written,
		Skipped: p.Skipped,
		Present: p.Present,
		Failed:  p.Failed,
		Last:    p,
	}
}

// report calls cfg.progress every cfg.every until the returned function
// is called, which returns once no call is running. Panics in the callback
// are recovered and counted.
func (c *Cache) report(r *warmRun, cfg warmupConfig) (stop func()) {
	if cfg.progress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(cfg.every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				c.callProgress(r, cfg)
			}
		}
	})
	return func() {
		close(quit)
		wg.Wait()
	}
}

// callProgress calls cfg.progress, if set, with r's progress, recovering
// and counting a panic.
func (c *Cache) callProgress(r *warmRun, cfg warmupConfig) {
	if cfg.progress == nil {
		return
	}
	defer func() {
		if recover() != nil {
			c.ctr.warmPanics.Add(1)
		}
	}()
	cfg.progress(r.progress())
}

// counterPair counts for one warmup run and for the cache's lifetime stats.
type counterPair struct {
	local  atomic.Int64
	global *atomic.Int64
}

func (p *counterPair) add(n int64) {
	p.local.Add(n)
	p.global.Add(n)
}
