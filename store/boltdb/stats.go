package boltdb

import (
	"sync"
	"sync/atomic"
)

// stats are the store's counters. They are atomics so that the hot paths
// count without a lock; Counters reads them one by one, so a snapshot is
// not taken at a single instant.
type stats struct {
	batchesWritten atomic.Int64
	entriesWritten atomic.Int64
	deletesWritten atomic.Int64
	touchesWritten atomic.Int64
	touchesDropped atomic.Int64
	gcDeleted      atomic.Int64
	gcRuns         atomic.Int64
	gcBatches      atomic.Int64
	gcErrors       atomic.Int64
	evicted        atomic.Int64
	dropped        atomic.Int64
	writeErrors    atomic.Int64
	panics         atomic.Int64
	badRecords     atomic.Int64
	checksumErrors atomic.Int64
	scrubbed       atomic.Int64
	addsPresent    atomic.Int64
	lost           atomic.Int64
	quarantined    atomic.Int64

	// diskEntries and diskBytes mirror the totals in the file as of the
	// newest commit, totalsTx. The writer and the GC commit in turn but
	// report afterwards in any order; the transaction id keeps an older
	// report from overwriting a newer one.
	totalsMu    sync.Mutex
	totalsTx    int
	diskEntries atomic.Int64
	diskBytes   atomic.Int64
}

func (st *stats) setTotals(txid int, t totals) {
	st.totalsMu.Lock()
	defer st.totalsMu.Unlock()
	if txid < st.totalsTx {
		return
	}
	st.totalsTx = txid
	st.diskEntries.Store(t.entries)
	st.diskBytes.Store(t.bytes)
}

func (st *stats) overCap(maxEntries int, maxBytes int64) bool {
	return (maxEntries > 0 && st.diskEntries.Load() > int64(maxEntries)) ||
		(maxBytes > 0 && st.diskBytes.Load() > maxBytes)
}

// Counters returns the store's counters:
//
//	queue_depth      keys waiting for the writer
//	pending          keys with a write not yet committed (queued or in the batch being written)
//	batches_written  write transactions committed by the writer, one fsync each
//	entries_written  values written to the file
//	deletes_written  deletes applied to the file
//	touches_queued   keys read from the file waiting to be written to the use log
//	touches_written  such keys written to the use log (see WithRecencyLog)
//	touches_dropped  reads not logged because the queue of touches was full
//	dropped          Set and Add values not queued: the queue stayed full until the caller's ctx ended
//	adds_present     Adds the writer did not apply: the file held a live entry
//	write_errors     batches that failed to commit (their writes are queued again and retried)
//	lost             writes whose last attempt, on Close, failed: Close reported them
//	gc_runs          GC passes, background and RunGC
//	gc_batches       GC delete transactions
//	gc_deleted       entries the GC deleted: expired, or not an envelope
//	gc_errors        background GC passes that failed
//	evicted          entries evicted by the size cap
//	panics           panics recovered in the store's reads, writer and GC
//	bad_records      records found that are not envelopes
//	checksum_errors  reads that met a record failing its checksum, served as a miss
//	scrubbed         such records removed by the writer
//	quarantined      1 if Open moved a corrupt file aside
//	entries, bytes   entries in the file and their size, as counted by WithMaxBytes
func (s *Store) Counters() map[string]int64 {
	queued, pending := s.q.depth()
	st := &s.stats
	return map[string]int64{
		"queue_depth":     int64(queued),
		"pending":         int64(pending),
		"batches_written": st.batchesWritten.Load(),
		"entries_written": st.entriesWritten.Load(),
		"deletes_written": st.deletesWritten.Load(),
		"touches_queued":  int64(s.q.touchDepth()),
		"touches_written": st.touchesWritten.Load(),
		"touches_dropped": st.touchesDropped.Load(),
		"dropped":         st.dropped.Load(),
		"adds_present":    st.addsPresent.Load(),
		"lost":            st.lost.Load(),
		"checksum_errors": st.checksumErrors.Load(),
		"scrubbed":        st.scrubbed.Load(),
		"write_errors":    st.writeErrors.Load(),
		"gc_runs":         st.gcRuns.Load(),
		"gc_batches":      st.gcBatches.Load(),
		"gc_deleted":      st.gcDeleted.Load(),
		"gc_errors":       st.gcErrors.Load(),
		"evicted":         st.evicted.Load(),
		"panics":          st.panics.Load(),
		"bad_records":     st.badRecords.Load(),
		"quarantined":     st.quarantined.Load(),
		"entries":         st.diskEntries.Load(),
		"bytes":           st.diskBytes.Load(),
	}
}
