package tier

import "sync/atomic"

// TierStats counts what happened at one tier of the chain.
type TierStats struct {
	Name string
	// Hits are lookups this tier answered with a fresh entry.
	Hits int64
	// Misses are lookups it could not answer, including expired entries and
	// errors (a broken tier is a miss).
	Misses int64
	// Errors are failed operations of any kind (lookups and writes).
	Errors int64
	// Backfills are entries written into this tier by the chain after a
	// lookup found them lower down or in the source.
	Backfills int64
	// Counters are the tier's own counters, for tiers that report them.
	Counters map[string]int64
	// Nodes are the tier's servers, for tiers that report them.
	Nodes []NodeStats
}

// LoaderStats counts the work done by the source of truth.
type LoaderStats struct {
	// Statements is the number of Load calls (one SQL statement each with
	// the SQL loader).
	Statements int64
	// Keys is the number of keys asked for.
	Keys int64
	// Loaded is the number of keys the source returned.
	Loaded int64
	// NotFound is the number of keys the source does not have.
	NotFound int64
	// Errors is the number of failed Load calls.
	Errors int64
	// Panics is the number of loads that panicked.
	Panics int64
	// Waits are loads that found WithLoadConcurrency loads running and
	// waited for one to end; Shed, those that waited the whole load
	// timeout and were dropped (ErrOverloaded). Rejected are loads the
	// open breaker failed at once (ErrSourceDown); Trips, the times it
	// opened.
	Waits, Shed, Rejected, Trips int64
}

// FillStats counts the writes flights make into the tiers after answering
// their callers.
type FillStats struct {
	// Pending are flights waiting to write or writing; Done, those that
	// have written; Panics, those a tier panicked in.
	Pending, Done, Panics int64
}

// WarmupStats counts warmups. In Stats it covers the cache's lifetime;
// Warmup returns one for its own run.
type WarmupStats struct {
	// Running is true while a warmup runs. Runs counts warmups started,
	// AutoRuns those started by WithAutoWarmup after a restart.
	Running        bool
	Runs, AutoRuns int64
	// Restarts counts restarts the top tier reported (RestartWatcher).
	Restarts int64
	// Panics counts panics recovered in automatic warmups and in progress
	// callbacks.
	Panics int64
	// Scanned entries were read from the durable tier; Sent were handed to
	// the tiers above; Written were added there; Skipped were expired,
	// negative, invalidated meanwhile or too large for a tier; Present
	// were already there; Failed could not be written.
	Scanned, Sent, Written, Skipped, Present, Failed int64
	// Last is the progress of the warmup running now or, when none is, of
	// the last one; the zero value before the first.
	Last WarmupProgress
}

// LeaseStats counts what leases (WithLeases) did.
type LeaseStats struct {
	// Requests are keys whose lease the chain asked the top tier for
	// (again at every poll); Won, those it was given; Hits, those the top
	// tier answered with a value someone had filled meanwhile.
	Requests, Won, Hits int64
	// Waits are keys whose lease another caller held when this process
	// missed them and found no usable durable copy; WaitHits, the waits
	// the holder's fill answered; Timeouts, the waits that reached the
	// wait limit, after which this process loaded the key itself. Polls
	// are the round trips spent waiting.
	Waits, WaitHits, Timeouts, Polls int64
	// Fills are values written into the top tier through a lease;
	// Refused, fills the top tier turned down because an invalidation
	// (or a takeover of an expired lease) came first; Released, leases
	// given up after a failed load.
	Fills, Refused, Released int64
	// Rejected are durable copies not served because they were loaded
	// before the key's last invalidation, as the top tier's marker says.
	Rejected int64
	// Fallbacks are keys whose lease could not be asked for (the top tier
	// unreachable): they were loaded with in-process singleflight only.
	Fallbacks int64
	// Markers are invalidation markers Set and Delete left in the top
	// tier.
	Markers int64
	// Rejoins are callers that joined a load which had read the key
	// before they arrived, and loaded it again: another process may have
	// invalidated the key in between.
	Rejoins int64
}

// RefreshStats counts early refreshes (WithEarlyRefresh) and
// stale-while-revalidate (WithStaleWhileRevalidate).
type RefreshStats struct {
	// Early are hits that drew a refresh; StaleServed, expired values
	// answered within the grace window (each also a top-tier miss).
	Early, StaleServed int64
	// Started are background refreshes begun; Done, those that wrote a new
	// value; Skipped, those another process was already doing (it held
	// the lease); Failed, those whose load or lease request failed;
	// Panics, those that panicked (also in Loader.Panics).
	Started, Done, Skipped, Failed, Panics int64
	// Throttled are refreshes not started because WithRefreshConcurrency
	// of them were running.
	Throttled int64
}

// Stats is a snapshot of the cache's counters. Counters only grow; compare
// two snapshots with Sub to see what happened in between.
type Stats struct {
	Tiers  []TierStats
	Loader LoaderStats
	// Gets and MultiKeys count keys asked for through Get and GetMulti.
	Gets, MultiKeys int64
	// Flights are loads started; SharedWaits are callers that joined a load
	// another caller had started instead of starting their own.
	Flights, SharedWaits int64
	// StaleServed counts expired copies returned because the loader failed
	// and WithStaleIfError allowed it.
	StaleServed int64
	// Invalidations counts keys passed to Set and Delete.
	Invalidations int64
	Warmup        WarmupStats
	Leases        LeaseStats
	Refresh       RefreshStats
	Fills         FillStats
}

// Sub returns s minus other, counter by counter, for measuring an interval.
// Tier counters are matched by position.
func (s Stats) Sub(other Stats) Stats {
	d := s
	for _, def := range chainCounters {
		*def.stat(&d) -= *def.stat(&other)
	}
	d.Tiers = make([]TierStats, len(s.Tiers))
	for i, t := range s.Tiers {
		d.Tiers[i] = t
		if i < len(other.Tiers) {
			for _, def := range tierCounterDefs {
				o := other.Tiers[i]
				*def.stat(&d.Tiers[i]) -= *def.stat(&o)
			}
		}
	}
	return d
}

// StatCounter is one of the chain's counters as Stats reports it, with the
// name and meaning metrics and dashboards show it under.
type StatCounter struct {
	// Group is "loader", "fills", "lease", "refresh" or "warmup", or "" for the
	// chain's own counters; Name is the counter's name within it
	// ("statements"), in the snake case metric names use.
	Group, Name string
	// Help says what the counter counts, in one sentence.
	Help  string
	Value int64
}

// List lists the counters of s (all but the tiers'), in a fixed order.
func (s Stats) List() []StatCounter {
	out := make([]StatCounter, len(chainCounters))
	for i, def := range chainCounters {
		out[i] = StatCounter{Group: def.group, Name: def.name, Help: def.help, Value: *def.stat(&s)}
	}
	return out
}

// List lists the chain's counters of the tier t (hits, misses, errors,
// backfills), in a fixed order; the tier's own counters are in
// t.Counters.
func (t TierStats) List() []StatCounter {
	out := make([]StatCounter, len(tierCounterDefs))
	for i, def := range tierCounterDefs {
		out[i] = StatCounter{Name: def.name, Help: def.help, Value: *def.stat(&t)}
	}
	return out
}

// counterDef declares one counter: its name and help, the live atomic the
// chain adds to (found from the Cache or the chain tier), and the field of
// Stats that reports it. Snapshots, Sub
// and the metrics all go through the tables below, so a new counter is a
// field of Stats, a field of counters and one row here.
type counterDef[L, S any] struct {
	group, name, help string
	live              func(*L) *atomic.Int64
	stat              func(*S) *int64
}

var tierCounterDefs = [...]counterDef[tierCounters, TierStats]{
	{"", "hits", "Lookups the tier answered with a fresh entry.",
		func(c *tierCounters) *atomic.Int64 { return &c.hits }, func(s *TierStats) *int64 { return &s.Hits }},
	{"", "misses", "Lookups the tier could not answer (absent, expired or failed).",
		func(c *tierCounters) *atomic.Int64 { return &c.misses }, func(s *TierStats) *int64 { return &s.Misses }},
	{"", "errors", "Failed operations on the tier, lookups and writes.",
		func(c *tierCounters) *atomic.Int64 { return &c.errors }, func(s *TierStats) *int64 { return &s.Errors }},
	{"", "backfills", "Entries the chain wrote into the tier after finding them lower down.",
		func(c *tierCounters) *atomic.Int64 { return &c.backfills }, func(s *TierStats) *int64 { return &s.Backfills }},
}

var chainCounters = [...]counterDef[Cache, Stats]{
	{"loader", "statements", "Load calls on the source (one SQL statement each with the SQL loader).",
		func(c *Cache) *atomic.Int64 { return &c.ctr.statements }, func(s *Stats) *int64 { return &s.Loader.Statements }},
	{"loader", "keys", "Keys asked of the source.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.loadKeys }, func(s *Stats) *int64 { return &s.Loader.Keys }},
	{"loader", "loaded", "Keys the source returned.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.loaded }, func(s *Stats) *int64 { return &s.Loader.Loaded }},
	{"loader", "not_found", "Keys the source does not have.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.notFound }, func(s *Stats) *int64 { return &s.Loader.NotFound }},
	{"loader", "errors", "Failed Load calls.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.loadErrors }, func(s *Stats) *int64 { return &s.Loader.Errors }},
	{"loader", "panics", "Loads that panicked.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.panics }, func(s *Stats) *int64 { return &s.Loader.Panics }},
	{"loader", "waits", "Loads that waited for one of the concurrent loads allowed to end.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.loadWaits }, func(s *Stats) *int64 { return &s.Loader.Waits }},
	{"loader", "shed", "Loads dropped after waiting the whole load timeout (overloaded).",
		func(c *Cache) *atomic.Int64 { return &c.ctr.loadShed }, func(s *Stats) *int64 { return &s.Loader.Shed }},
	{"loader", "rejected", "Loads the open breaker failed at once (source down).",
		func(c *Cache) *atomic.Int64 { return &c.ctr.loadRejected }, func(s *Stats) *int64 { return &s.Loader.Rejected }},
	{"loader", "trips", "Times the breaker opened.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.breakerTrips }, func(s *Stats) *int64 { return &s.Loader.Trips }},
	{"fills", "done", "Flights that wrote their values into the tiers after answering.",
		func(c *Cache) *atomic.Int64 { return &c.fills.done }, func(s *Stats) *int64 { return &s.Fills.Done }},
	{"fills", "panics", "Fills a tier panicked in.",
		func(c *Cache) *atomic.Int64 { return &c.fills.panics }, func(s *Stats) *int64 { return &s.Fills.Panics }},
	{"", "gets", "Keys asked for through Get.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.gets }, func(s *Stats) *int64 { return &s.Gets }},
	{"", "multi_keys", "Keys asked for through GetMulti.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.multiKeys }, func(s *Stats) *int64 { return &s.MultiKeys }},
	{"", "flights", "Loads started below the top tier (singleflight leaders).",
		func(c *Cache) *atomic.Int64 { return &c.ctr.flights }, func(s *Stats) *int64 { return &s.Flights }},
	{"", "shared_waits", "Callers that joined a load another caller had started.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.sharedWaits }, func(s *Stats) *int64 { return &s.SharedWaits }},
	{"", "stale_served", "Expired copies served because the source failed (stale-if-error).",
		func(c *Cache) *atomic.Int64 { return &c.ctr.staleServed }, func(s *Stats) *int64 { return &s.StaleServed }},
	{"", "invalidations", "Keys passed to Set and Delete.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.invalidations }, func(s *Stats) *int64 { return &s.Invalidations }},
	{"lease", "requests", "Keys whose lease was asked for (again at every poll).",
		func(c *Cache) *atomic.Int64 { return &c.ctr.leaseRequests }, func(s *Stats) *int64 { return &s.Leases.Requests }},
	{"lease", "won", "Leases this process was given: it loaded the key for every process.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.leaseWon }, func(s *Stats) *int64 { return &s.Leases.Won }},
	{"lease", "hits", "Lease requests answered with a value another process had filled.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.leaseHits }, func(s *Stats) *int64 { return &s.Leases.Hits }},
	{"lease", "waits", "Keys whose lease another process held while this one missed them.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.leaseWaits }, func(s *Stats) *int64 { return &s.Leases.Waits }},
	{"lease", "wait_hits", "Waits the holder's fill answered.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.leaseWaitHits }, func(s *Stats) *int64 { return &s.Leases.WaitHits }},
	{"lease", "timeouts", "Waits that reached the wait limit; the key was then loaded here.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.leaseTimeouts }, func(s *Stats) *int64 { return &s.Leases.Timeouts }},
	{"lease", "polls", "Round trips spent waiting for another process's fill.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.leasePolls }, func(s *Stats) *int64 { return &s.Leases.Polls }},
	{"lease", "fills", "Values written into the top tier through a lease.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.leaseFills }, func(s *Stats) *int64 { return &s.Leases.Fills }},
	{"lease", "refused", "Fills refused because an invalidation came first.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.leaseRefused }, func(s *Stats) *int64 { return &s.Leases.Refused }},
	{"lease", "released", "Leases given up after a failed load.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.leaseReleased }, func(s *Stats) *int64 { return &s.Leases.Released }},
	{"lease", "rejected", "Durable copies not served: loaded before the key's last invalidation.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.leaseRejected }, func(s *Stats) *int64 { return &s.Leases.Rejected }},
	{"lease", "fallbacks", "Keys loaded with in-process singleflight only (lease unavailable).",
		func(c *Cache) *atomic.Int64 { return &c.ctr.leaseFallbacks }, func(s *Stats) *int64 { return &s.Leases.Fallbacks }},
	{"lease", "markers", "Invalidation markers written by Set and Delete.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.leaseMarkers }, func(s *Stats) *int64 { return &s.Leases.Markers }},
	{"lease", "rejoins", "Callers that reloaded instead of joining a load older than their arrival.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.leaseRejoins }, func(s *Stats) *int64 { return &s.Leases.Rejoins }},
	{"refresh", "early", "Hits that drew an early refresh.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.refreshEarly }, func(s *Stats) *int64 { return &s.Refresh.Early }},
	{"refresh", "stale_served", "Expired values answered within the stale-while-revalidate grace.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.refreshStale }, func(s *Stats) *int64 { return &s.Refresh.StaleServed }},
	{"refresh", "started", "Background refreshes begun.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.refreshStarted }, func(s *Stats) *int64 { return &s.Refresh.Started }},
	{"refresh", "done", "Background refreshes that wrote a new value.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.refreshDone }, func(s *Stats) *int64 { return &s.Refresh.Done }},
	{"refresh", "skipped", "Background refreshes another process was already doing.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.refreshSkipped }, func(s *Stats) *int64 { return &s.Refresh.Skipped }},
	{"refresh", "failed", "Background refreshes whose load or lease request failed.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.refreshFailed }, func(s *Stats) *int64 { return &s.Refresh.Failed }},
	{"refresh", "panics", "Background refreshes that panicked.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.refreshPanics }, func(s *Stats) *int64 { return &s.Refresh.Panics }},
	{"refresh", "throttled", "Refreshes not started: the concurrency limit was reached.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.refreshThrottled }, func(s *Stats) *int64 { return &s.Refresh.Throttled }},
	{"warmup", "runs", "Warmups started.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.warmRuns }, func(s *Stats) *int64 { return &s.Warmup.Runs }},
	{"warmup", "auto_runs", "Warmups started by a restart the top tier reported (automatic warmup).",
		func(c *Cache) *atomic.Int64 { return &c.ctr.warmAutoRuns }, func(s *Stats) *int64 { return &s.Warmup.AutoRuns }},
	{"warmup", "restarts", "Server restarts or flushes the top tier reported.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.warmRestarts }, func(s *Stats) *int64 { return &s.Warmup.Restarts }},
	{"warmup", "panics", "Panics recovered in automatic warmups.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.warmPanics }, func(s *Stats) *int64 { return &s.Warmup.Panics }},
	{"warmup", "scanned", "Entries read from the durable tier by warmups.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.warmScanned }, func(s *Stats) *int64 { return &s.Warmup.Scanned }},
	{"warmup", "sent", "Entries warmups handed to the tiers above.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.warmSent }, func(s *Stats) *int64 { return &s.Warmup.Sent }},
	{"warmup", "written", "Entries warmups added to the tiers above.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.warmWritten }, func(s *Stats) *int64 { return &s.Warmup.Written }},
	{"warmup", "skipped", "Entries warmups skipped: expired, negative or invalidated.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.warmSkipped }, func(s *Stats) *int64 { return &s.Warmup.Skipped }},
	{"warmup", "present", "Entries warmups found already present above.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.warmPresent }, func(s *Stats) *int64 { return &s.Warmup.Present }},
	{"warmup", "failed", "Entries warmups could not write.",
		func(c *Cache) *atomic.Int64 { return &c.ctr.warmFailed }, func(s *Stats) *int64 { return &s.Warmup.Failed }},
}

type tierCounters struct {
	hits, misses, errors, backfills atomic.Int64
}

// counters are the chain's live counters; chainCounters says where Stats
// reports each. warmRunning is a level, reported as Warmup.Running.
type counters struct {
	gets, multiKeys, flights, sharedWaits, staleServed, invalidations atomic.Int64

	statements, loadKeys, loaded, notFound, loadErrors, panics atomic.Int64
	loadWaits, loadShed, loadRejected, breakerTrips            atomic.Int64

	warmRunning, warmRuns, warmAutoRuns, warmRestarts, warmPanics atomic.Int64
	warmScanned, warmSent, warmWritten, warmSkipped, warmPresent  atomic.Int64
	warmFailed                                                    atomic.Int64

	leaseRequests, leaseWon, leaseHits, leaseWaits, leaseWaitHits atomic.Int64
	leaseTimeouts, leasePolls, leaseFills, leaseRefused           atomic.Int64
	leaseReleased, leaseRejected, leaseFallbacks, leaseMarkers    atomic.Int64
	leaseRejoins                                                  atomic.Int64

	refreshEarly, refreshStale, refreshStarted, refreshDone atomic.Int64
	refreshSkipped, refreshFailed, refreshPanics            atomic.Int64
	refreshThrottled                                        atomic.Int64
}

// Stats returns a snapshot of the cache's counters, with each tier's own
// counters when it reports them.
func (c *Cache) Stats() Stats {
	var s Stats
	for _, def := range chainCounters {
		*def.stat(&s) = def.live(c).Load()
	}
	s.Fills.Pending = c.fills.pending.Load()
	s.Warmup.Running = c.ctr.warmRunning.Load() > 0
	if r := c.lastRun.Load(); r != nil {
		s.Warmup.Last = r.progress()
	}
	s.Tiers = make([]TierStats, len(c.tiers))
	for i, t := range c.tiers {
		ts := TierStats{Name: t.name}
		for _, def := range tierCounterDefs {
			*def.stat(&ts) = def.live(&t.ctr).Load()
		}
		if cr, ok := t.tier.(Counter); ok {
			ts.Counters = cr.Counters()
		}
		if nr, ok := t.tier.(NodeReporter); ok {
			ts.Nodes = nr.NodeStats()
		}
		s.Tiers[i] = ts
	}
	return s
}
