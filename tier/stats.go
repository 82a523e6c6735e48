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
	d.Tiers = make([]TierStats, len(s.Tiers))
	for i, t := range s.Tiers {
		d.Tiers[i] = t
		if i < len(other.Tiers) {
			o := other.Tiers[i]
			d.Tiers[i].Hits -= o.Hits
			d.Tiers[i].Misses -= o.Misses
			d.Tiers[i].Errors -= o.Errors
			d.Tiers[i].Backfills -= o.Backfills
		}
	}
	d.Loader.Statements -= other.Loader.Statements
	d.Loader.Keys -= other.Loader.Keys
	d.Loader.Loaded -= other.Loader.Loaded
	d.Loader.NotFound -= other.Loader.NotFound
	d.Loader.Errors -= other.Loader.Errors
	d.Loader.Panics -= other.Loader.Panics
	d.Loader.Waits -= other.Loader.Waits
	d.Loader.Shed -= other.Loader.Shed
	d.Loader.Rejected -= other.Loader.Rejected
	d.Loader.Trips -= other.Loader.Trips
	d.Fills.Done -= other.Fills.Done
	d.Fills.Panics -= other.Fills.Panics
	d.Gets -= other.Gets
	d.MultiKeys -= other.MultiKeys
	d.Flights -= other.Flights
	d.SharedWaits -= other.SharedWaits
	d.StaleServed -= other.StaleServed
	d.Invalidations -= other.Invalidations
	l, ol := &d.Leases, other.Leases
	l.Requests -= ol.Requests
	l.Won -= ol.Won
	l.Hits -= ol.Hits
	l.Waits -= ol.Waits
	l.WaitHits -= ol.WaitHits
	l.Timeouts -= ol.Timeouts
	l.Polls -= ol.Polls
	l.Fills -= ol.Fills
	l.Refused -= ol.Refused
	l.Released -= ol.Released
	l.Rejected -= ol.Rejected
	l.Fallbacks -= ol.Fallbacks
	l.Markers -= ol.Markers
	l.Rejoins -= ol.Rejoins
	rf, orf := &d.Refresh, other.Refresh
	rf.Early -= orf.Early
	rf.StaleServed -= orf.StaleServed
	rf.Started -= orf.Started
	rf.Done -= orf.Done
	rf.Skipped -= orf.Skipped
	rf.Failed -= orf.Failed
	rf.Panics -= orf.Panics
	rf.Throttled -= orf.Throttled
	w, ow := &d.Warmup, other.Warmup
	w.Runs -= ow.Runs
	w.AutoRuns -= ow.AutoRuns
	w.Restarts -= ow.Restarts
	w.Panics -= ow.Panics
	w.Scanned -= ow.Scanned
	w.Sent -= ow.Sent
	w.Written -= ow.Written
	w.Skipped -= ow.Skipped
	w.Present -= ow.Present
	w.Failed -= ow.Failed
	return d
}

type tierCounters struct {
	hits, misses, errors, backfills atomic.Int64
}

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
	s := Stats{
		Tiers: make([]TierStats, len(c.tiers)),
		Loader: LoaderStats{
			Statements: c.ctr.statements.Load(),
			Keys:       c.ctr.loadKeys.Load(),
			Loaded:     c.ctr.loaded.Load(),
			NotFound:   c.ctr.notFound.Load(),
			Errors:     c.ctr.loadErrors.Load(),
			Panics:     c.ctr.panics.Load(),
			Waits:      c.ctr.loadWaits.Load(),
			Shed:       c.ctr.loadShed.Load(),
			Rejected:   c.ctr.loadRejected.Load(),
			Trips:      c.ctr.breakerTrips.Load(),
		},
		Fills: FillStats{
			Pending: c.fills.pending.Load(),
			Done:    c.fills.done.Load(),
			Panics:  c.fills.panics.Load(),
		},
		Gets:          c.ctr.gets.Load(),
		MultiKeys:     c.ctr.multiKeys.Load(),
		Flights:       c.ctr.flights.Load(),
		SharedWaits:   c.ctr.sharedWaits.Load(),
		StaleServed:   c.ctr.staleServed.Load(),
		Invalidations: c.ctr.invalidations.Load(),
		Warmup: WarmupStats{
			Running:  c.ctr.warmRunning.Load() > 0,
			Runs:     c.ctr.warmRuns.Load(),
			AutoRuns: c.ctr.warmAutoRuns.Load(),
			Restarts: c.ctr.warmRestarts.Load(),
			Panics:   c.ctr.warmPanics.Load(),
			Scanned:  c.ctr.warmScanned.Load(),
			Sent:     c.ctr.warmSent.Load(),
			Written:  c.ctr.warmWritten.Load(),
			Skipped:  c.ctr.warmSkipped.Load(),
			Present:  c.ctr.warmPresent.Load(),
			Failed:   c.ctr.warmFailed.Load(),
		},
	}
	s.Leases = LeaseStats{
		Requests:  c.ctr.leaseRequests.Load(),
		Won:       c.ctr.leaseWon.Load(),
		Hits:      c.ctr.leaseHits.Load(),
		Waits:     c.ctr.leaseWaits.Load(),
		WaitHits:  c.ctr.leaseWaitHits.Load(),
		Timeouts:  c.ctr.leaseTimeouts.Load(),
		Polls:     c.ctr.leasePolls.Load(),
		Fills:     c.ctr.leaseFills.Load(),
		Refused:   c.ctr.leaseRefused.Load(),
		Released:  c.ctr.leaseReleased.Load(),
		Rejected:  c.ctr.leaseRejected.Load(),
		Fallbacks: c.ctr.leaseFallbacks.Load(),
		Markers:   c.ctr.leaseMarkers.Load(),
		Rejoins:   c.ctr.leaseRejoins.Load(),
	}
	s.Refresh = RefreshStats{
		Early:       c.ctr.refreshEarly.Load(),
		StaleServed: c.ctr.refreshStale.Load(),
		Started:     c.ctr.refreshStarted.Load(),
		Done:        c.ctr.refreshDone.Load(),
		Skipped:     c.ctr.refreshSkipped.Load(),
		Failed:      c.ctr.refreshFailed.Load(),
		Panics:      c.ctr.refreshPanics.Load(),
		Throttled:   c.ctr.refreshThrottled.Load(),
	}
	if r := c.lastRun.Load(); r != nil {
		s.Warmup.Last = r.progress()
	}
	for i, t := range c.tiers {
		ts := TierStats{
			Name:      t.name,
			Hits:      t.ctr.hits.Load(),
			Misses:    t.ctr.misses.Load(),
			Errors:    t.ctr.errors.Load(),
			Backfills: t.ctr.backfills.Load(),
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
