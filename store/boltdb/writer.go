package boltdb

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Backoff between attempts after a batch fails to commit: the failed
// writes wait in the queue, as they were, instead of the writer spinning on
// a disk that is full or gone.
const (
	retryMin = 10 * time.Millisecond
	retryMax = time.Second
)

// runWriter is the one goroutine that writes to the file. It sleeps until a
// write arrives, waits up to the flush interval for a batch to fill, then
// commits batches until the queue is empty. Writes that arrive during a
// commit's fsync wait for the next one, so under load batches fill by
// themselves. On Close it commits whatever is left and exits.
func (s *Store) runWriter() {
	defer s.bg.Done()
	defer s.q.stop()
	for !s.writeUntilClosed() {
		s.stats.panics.Add(1)
		s.sleep(retryMin) // not a hot loop if the panic recurs
	}
}

// writeUntilClosed is the writer's loop. It returns true when the store
// closed, and false after a panic outside a commit (commits recover their
// own), so that runWriter counts it and carries on: a writer that died
// would leave every later write in the queue, and deletes waiting forever.
func (s *Store) writeUntilClosed() (closed bool) {
	defer func() {
		if recover() != nil {
			closed = false
		}
	}()
	for {
		if s.ctx.Err() != nil {
			s.drainErr = s.writeQueued(false)
			return true
		}
		select {
		case <-s.ctx.Done():
			continue
		case <-s.q.wake:
		}
		s.gatherBatch()
		for attempt := 0; s.writeQueued(true) != nil; attempt++ {
			if !s.sleep(min(retryMin<<min(attempt, 7), retryMax)) {
				break
			}
		}
	}
}

// gatherBatch waits for a full batch, a Flush, Close or the flush interval,
// whichever comes first. When only touches wait (see recency.go), it waits
// touchDelay instead, so that reads alone cost at most one commit that
// often; a write that arrives meanwhile waits no longer than usual.
func (s *Store) gatherBatch() {
	if s.q.ready() {
		return
	}
	writes := s.q.hasWrites()
	wait := s.opts.flushInterval
	if !writes {
		wait = max(wait, touchDelay)
	}
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			return
		case <-s.q.wake:
			if s.q.ready() {
				return
			}
			if !writes && s.q.hasWrites() {
				writes = true
				if s.opts.flushInterval <= 0 {
					return
				}
				t.Reset(s.opts.flushInterval)
			}
		}
	}
}

// sleep waits for d and reports false if the store is closing instead.
func (s *Store) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// writeQueued commits batches until the queue is empty. With requeue it
// stops at the first failure, its writes back in the queue for a retry;
// without (closing), it tries every batch once and returns an error
// wrapping ErrLostWrites that counts the writes whose last attempt failed,
// with each failure.
func (s *Store) writeQueued(requeue bool) error {
	var (
		errs []error
		lost int
	)
	for {
		b := s.q.take(s.opts.batchSize)
		if len(b.writes) == 0 && len(b.touches) == 0 {
			break
		}
		err := s.commit(b.writes, b.touches)
		if len(b.writes) > 0 {
			lost += s.q.finish(b, err, requeue)
		}
		if err != nil {
			if requeue {
				return err
			}
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	s.stats.lost.Add(int64(lost))
	return fmt.Errorf("boltdb: close %s: %d writes: %w: %w", s.path, lost, ErrLostWrites, errors.Join(errs...))
}

// commit applies writes, then touches, and the evictions the size cap
// asks for, in one bbolt transaction: one commit, one fsync. A panic
// inside is recovered and returned as an error, so the writer keeps
// running.
func (s *Store) commit(writes []write, touches []string) (err error) {
	var (
		puts, deletes, present, scrubbed, moved, evicted, txid int
		after                                                  totals
	)
	now := s.opts.clock.Now()
	err = s.update(func(tx *bolt.Tx) error {
		puts, deletes, present, scrubbed = 0, 0, 0, 0
		l, err := openLayout(tx)
		if err != nil {
			return err
		}
		for _, w := range writes {
			k := diskKey(w.key)
			switch w.op {
			case opDelete:
				if _, err := l.remove(k); err != nil {
					return fmt.Errorf("delete %.64q: %w", w.key, err)
				}
				deletes++
				continue
			case opScrub:
				if old := l.entries.Get(k); old == nil || sound(k[1:], old) {
					continue
				}
				if _, err := l.remove(k); err != nil {
					return fmt.Errorf("remove damaged %.64q: %w", w.key, err)
				}
				scrubbed++
				continue
			}
			old := l.entries.Get(k)
			if w.op == opAdd && old != nil && s.live(k[1:], old, now) {
				present++
				continue
			}
			if err := l.replace(k, old, w.record); err != nil {
				return fmt.Errorf("put %.64q: %w", w.key, err)
			}
			puts++
		}
		if moved, err = logUses(tx, writes, touches, s.opts.recencyLog); err != nil {
			return fmt.Errorf("log uses: %w", err)
		}
		// Evicting as many entries as the batch added keeps the file at
		// the cap in steady state; gcBatch more shrinks it gradually after
		// the cap was lowered.
		if evicted, err = l.evictOver(s.opts.maxEntries, s.opts.maxBytes, len(writes)+s.opts.gcBatch); err != nil {
			return fmt.Errorf("evict: %w", err)
		}
		after, txid = l.totals, tx.ID()
		return l.save()
	})
	if err != nil {
		s.stats.writeErrors.Add(1)
		return fmt.Errorf("boltdb: write batch of %d to %s: %w", len(writes), s.path, err)
	}
	s.stats.batchesWritten.Add(1)
	s.stats.entriesWritten.Add(int64(puts))
	s.stats.deletesWritten.Add(int64(deletes))
	s.stats.addsPresent.Add(int64(present))
	s.stats.scrubbed.Add(int64(scrubbed))
	s.stats.touchesWritten.Add(int64(moved))
	s.stats.evicted.Add(int64(evicted))
	s.stats.setTotals(txid, after)
	return nil
}

// update runs fn in a read-write transaction, turning a panic or a memory
// fault on a damaged page into an error wrapping ErrCorrupt.
func (s *Store) update(fn func(tx *bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.recoverInto(&err)
	return closedErr(s.db.Update(fn))
}

// recoverInto turns a panic into *err, counting it.
func (s *Store) recoverInto(err *error) {
	if r := recover(); r != nil {
		s.stats.panics.Add(1)
		*err = fmt.Errorf("%w: %s: panic: %v", ErrCorrupt, s.path, r)
	}
}

// closedErr maps bbolt's error for a closed database to tier.ErrClosed.
func closedErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return errClosed
	}
	return err
}
