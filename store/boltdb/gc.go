package boltdb

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// RunGC runs one GC pass now and returns how many entries it deleted:
// those that expired more than the grace period ago (WithGCGrace), records
// that fail their checksum and records that are not envelopes. The pass then evicts down to the size
// cap, counting those in "evicted", not in the result.
//
// A pass reads every entry, gcBatch at a time, each chunk in its own read
// transaction, and deletes at most gcBatch entries per write transaction,
// so the writer never waits long behind it. Its cost is one read of the
// whole file per pass plus one commit per gcBatch deletions. It leaves alone
// keys with a write still queued: that write decides what the key holds.
func (s *Store) RunGC(ctx context.Context) (int, error) {
	if err := s.writable("gc"); err != nil {
		return 0, err
	}
	return s.gc(ctx)
}

// runGC runs a GC pass every gcInterval until Close.
func (s *Store) runGC() {
	defer s.bg.Done()
	t := time.NewTicker(s.opts.gcInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.gcGuarded()
		}
	}
}

// gcGuarded runs one background pass; a failed pass is counted, and the
// next tick tries again.
func (s *Store) gcGuarded() {
	defer func() {
		if r := recover(); r != nil {
			s.stats.panics.Add(1)
		}
	}()
	if _, err := s.gc(s.ctx); err != nil && s.ctx.Err() == nil {
		s.stats.gcErrors.Add(1)
	}
}

func (s *Store) gc(ctx context.Context) (int, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.stats.gcRuns.Add(1)
	deleted, err := s.sweepExpired(ctx)
	if err != nil {
		return deleted, err
	}
	return deleted, s.trimToCap(ctx)
}

// stopped returns why a pass should stop early: the caller's ctx or Close.
func (s *Store) stopped(ctx context.Context) error {
	if s.ctx.Err() != nil {
		return errClosed
	}
	return ctx.Err()
}

// sweepExpired walks the entries in chunks and deletes the doomed ones.
func (s *Store) sweepExpired(ctx context.Context) (int, error) {
	cutoff := s.opts.clock.Now().Add(-s.opts.gcGrace)
	var (
		after   []byte
		doomed  [][]byte
		deleted int
	)
	for {
		if err := s.stopped(ctx); err != nil {
			return deleted, err
		}
		var more bool
		err := s.view(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEntries)
			if b == nil {
				return nil
			}
			c := b.Cursor()
			var last []byte
			k, v := seekAfter(c, after)
			for n := 0; k != nil && n < s.opts.gcBatch; n++ {
				if s.isDoomed(k, v, cutoff) {
					doomed = append(doomed, bytes.Clone(k))
				}
				last = k
				k, v = c.Next()
			}
			after, more = bytes.Clone(last), k != nil
			return nil
		})
		if err != nil {
			return deleted, fmt.Errorf("boltdb: gc %s: %w", s.path, err)
		}
		// Deletions wait until a full transaction's worth is known, so
		// that a file with few expired entries is not synced once per
		// chunk.
		for len(doomed) >= s.opts.gcBatch || (!more && len(doomed) > 0) {
			n := min(len(doomed), s.opts.gcBatch)
			removed, err := s.deleteDoomed(doomed[:n], cutoff)
			deleted += removed
			if err != nil {
				return deleted, err
			}
			doomed = doomed[n:]
		}
		if !more {
			return deleted, nil
		}
	}
}

// seekAfter positions c at the first key after after, or the first key
// when after is nil.
func seekAfter(c *bolt.Cursor, after []byte) (k, v []byte) {
	if after == nil {
		return c.First()
	}
	k, v = c.Seek(after)
	if k != nil && bytes.Equal(k, after) {
		k, v = c.Next()
	}
	return k, v
}

// isDoomed reports whether the GC deletes the record stored under the disk
// key k: it fails its checksum, is not an envelope, or expired at or
// before cutoff.
func (s *Store) isDoomed(k, record []byte, cutoff time.Time) bool {
	e, err := s.decode(k[1:], record)
	return err != nil || e.Expired(cutoff)
}

// deleteDoomed deletes keys in one transaction, checking each again first:
// the writer may have replaced it since the read, and a key with a queued
// write is left to that write.
func (s *Store) deleteDoomed(keys [][]byte, cutoff time.Time) (int, error) {
	var (
		deleted, txid int
		after         totals
	)
	err := s.update(func(tx *bolt.Tx) error {
		deleted = 0
		l, err := openLayout(tx)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if s.q.isPending(userKey(k)) {
				continue
			}
			if v := l.entries.Get(k); v == nil || !s.isDoomed(k, v, cutoff) {
				continue
			}
			if _, err := l.remove(k); err != nil {
				return err
			}
			deleted++
		}
		after, txid = l.totals, tx.ID()
		return l.save()
	})
	if err != nil {
		return 0, fmt.Errorf("boltdb: gc %s: delete %d entries: %w", s.path, len(keys), err)
	}
	s.stats.gcBatches.Add(1)
	s.stats.gcDeleted.Add(int64(deleted))
	s.stats.setTotals(txid, after)
	return deleted, nil
}

// trimToCap evicts the oldest entries, gcBatch per transaction, until the
// store is within its size cap. The writer keeps it there as it writes;
// this catches up after the cap was lowered.
func (s *Store) trimToCap(ctx context.Context) error {
	if !s.stats.overCap(s.opts.maxEntries, s.opts.maxBytes) {
		return nil
	}
	for {
		if err := s.stopped(ctx); err != nil {
			return err
		}
		var (
			evicted, txid int
			over          bool
			after         totals
		)
		err := s.update(func(tx *bolt.Tx) error {
			l, err := openLayout(tx)
			if err != nil {
				return err
			}
			if evicted, err = l.evictOver(s.opts.maxEntries, s.opts.maxBytes, s.opts.gcBatch); err != nil {
				return err
			}
			over, after, txid = l.overCap(s.opts.maxEntries, s.opts.maxBytes), l.totals, tx.ID()
			return l.save()
		})
		if err != nil {
			return fmt.Errorf("boltdb: gc %s: evict: %w", s.path, err)
		}
		s.stats.evicted.Add(int64(evicted))
		s.stats.setTotals(txid, after)
		if !over || evicted == 0 {
			return nil
		}
	}
}
