package boltdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tiercache/tiercache/tier"
)

// addAttempts bounds how often Add rereads the file when batches keep
// committing under it; after that it reports the key as present, the
// answer that never overwrites anything.
const addAttempts = 3

// Set queues e for key and returns without waiting for the disk; Get sees
// it at once. For one key the last Set or Delete wins, on disk too.
//
// When the queue already holds WithQueueSize keys, the value is dropped
// and counted in "dropped", and Set still returns nil: losing a backfill
// costs a miss. It is queued as a delete instead, so that an older copy on
// disk is not served in its place; only when deletes have filled their
// reserve too (see Delete) is nothing queued, and an older copy may then be
// served until it expires. A key
// longer than bbolt allows (32767 bytes) or a record over 2 GiB returns an
// error wrapping tier.ErrTooLarge.
func (s *Store) Set(_ context.Context, key string, e tier.Entry) error {
	if err := s.writable("set"); err != nil {
		return err
	}
	record, err := s.encode(key, e)
	if err != nil {
		return err
	}
	switch s.q.set(key, record) {
	case setClosed:
		return errClosed
	case setInvalidated, setDropped:
		s.stats.dropped.Add(1)
	}
	return nil
}

// Add is Set for a key that holds no live entry: an unexpired value, queued
// or in the file, makes it return an error wrapping tier.ErrNotStored.
// Backfill and warmup use it so that they never overwrite what live traffic
// wrote. As with memcached's add, an expired entry counts as absent (by the
// WithClock clock): otherwise the refreshed value a backfill brings could
// never replace it. So do a queued delete and a record that is not an
// envelope. Like Set, Add does not wait for the disk, and drops the value
// when the queue is full.
func (s *Store) Add(ctx context.Context, key string, e tier.Entry) error {
	if err := s.writable("add"); err != nil {
		return err
	}
	record, err := s.encode(key, e)
	if err != nil {
		return err
	}
	notStored := func() error { return fmt.Errorf("boltdb: add %.64q: %w", key, tier.ErrNotStored) }
	now := s.opts.clock.Now()
	for range addAttempts {
		pendingRecord, pending, gen := s.q.lookupForAdd(key)
		if pending && live(pendingRecord, now) {
			return notStored()
		}
		if !pending {
			present, err := s.stored(ctx, key, now)
			if err != nil {
				return err
			}
			if present {
				return notStored()
			}
		}
		// The file said absent at generation gen; add queues the value
		// only if no batch has committed since, which could have stored
		// the key in between.
		present, stale, outcome := s.q.add(key, record, gen, now)
		switch {
		case present:
			return notStored()
		case stale:
			continue
		case outcome == setClosed:
			return errClosed
		case outcome == setDropped:
			s.stats.dropped.Add(1)
		}
		return nil
	}
	return notStored()
}

// stored reports whether the file holds a live entry for key at now.
func (s *Store) stored(ctx context.Context, key string, now time.Time) (bool, error) {
	if err := s.usable(ctx); err != nil {
		return false, err
	}
	var present bool
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketEntries); b != nil {
			present = live(b.Get(diskKey(key)), now)
		}
		return nil
	})
	if err != nil {
		return false, s.readError("add", key, err)
	}
	return present, nil
}

// live reports whether record is an entry Add must not replace at now: an
// envelope that has not expired. nil, a pending delete or a missing key,
// is not live.
func live(record []byte, now time.Time) bool {
	if record == nil {
		return false
	}
	e, err := tier.DecodeEntry(record)
	return err == nil && !e.Expired(now)
}

// encode checks that bbolt can hold key and e and returns e's envelope.
func (s *Store) encode(key string, e tier.Entry) ([]byte, error) {
	if len(key) > maxKeyLen {
		return nil, fmt.Errorf("boltdb: key of %d bytes, bbolt holds at most %d: %w", len(key), maxKeyLen, tier.ErrTooLarge)
	}
	if tier.EnvelopeOverhead+len(e.Value) > maxRecordLen {
		return nil, fmt.Errorf("boltdb: value of %d bytes for %.64q: %w", len(e.Value), key, tier.ErrTooLarge)
	}
	return tier.EncodeEntry(e), nil
}

// Delete queues the removal of key and returns without waiting for the
// disk; Get misses at once. Deleting an absent key is not an error.
//
// A delete is never dropped: an invalidation lost would serve stale data.
// Deletes may fill the queue to twice WithQueueSize (they carry no value);
// past that Delete waits for the writer to make room, and returns ctx's
// error, the delete not queued, if ctx ends first.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.writable("delete"); err != nil {
		return err
	}
	if len(key) > maxKeyLen {
		return nil // Set refuses such keys, so there is nothing to delete
	}
	if err := s.q.del(ctx, key); err != nil {
		if errors.Is(err, tier.ErrClosed) {
			return err
		}
		return fmt.Errorf("boltdb: delete %.64q: waiting for room in the write queue: %w", key, err)
	}
	return nil
}

// Flush waits until every write queued before the call is in the file,
// telling the writer not to wait for a fuller batch. It returns the error
// of a batch carrying one of those writes that failed to commit (the
// writes are then requeued as deletes and retried), or ctx's error.
// Warmup and tests use it; the read path never needs it.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	if s.opts.readOnly {
		return nil
	}
	return s.q.waitFlushed(ctx)
}
