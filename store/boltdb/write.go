package boltdb

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// Set queues e for key and returns without waiting for the disk; Get sees
// it at once. For one key the last Set or Delete wins, on disk too.
//
// When the queue already holds WithQueueSize keys, Set waits for the writer
// to make room, as long as ctx lets it: a full queue means the disk is
// behind, and waiting is the back-pressure that keeps every acknowledged
// write. If ctx ends first, Set returns an error wrapping ErrQueueFull and
// ctx's error, and counts the value in "dropped"; the key is then queued as
// a delete, so that an older copy on disk is not served in its place,
// unless deletes have filled their reserve too (see Delete), in which case
// the error says the older copy may remain. A key longer than bbolt allows
// (32767 bytes) or a record over 2 GiB returns an error wrapping
// tier.ErrTooLarge.
func (s *Store) Set(ctx context.Context, key string, e tier.Entry) error {
	if err := s.writable("set"); err != nil {
		return err
	}
	record, err := s.encode(key, e)
	if err != nil {
		return err
	}
	switch s.q.set(ctx, key, record) {
	case setClosed:
		return errClosed
	case setInvalidated:
		s.stats.dropped.Add(1)
		return fmt.Errorf("boltdb: set %.64q: value not written, older copy deleted: %w: %w", key, ErrQueueFull, ctx.Err())
	case setDropped:
		s.stats.dropped.Add(1)
		return fmt.Errorf("boltdb: set %.64q: value not written, an older copy may remain: %w: %w", key, ErrQueueFull, ctx.Err())
	}
	return nil
}

// Add is Set for a key that holds no live entry: an unexpired value, queued
// or in the file, is kept. Backfill and warmup use it so that they never
// overwrite what live traffic wrote. As with memcached's add, an expired
// entry counts as absent (by the WithClock clock): otherwise the refreshed
// value a backfill brings could never replace it. So do a queued delete
// and a record that fails its checksum or is not an envelope.
//
// Add reads nothing from the file: it queues the value, and the writer
// stores it only if the file holds no live entry when the batch commits,
// in the transaction that would write it. So Add returns an error wrapping
// tier.ErrNotStored only when a live value is queued for the key; a live
// entry in the file keeps the queued value out later, silently, and
// counted in "adds_present". Until its batch commits a queued Add is read
// back as the key's value.
//
// Like Set, Add waits for room in a full queue while ctx lets it, and
// returns an error wrapping ErrQueueFull when ctx ends first.
func (s *Store) Add(ctx context.Context, key string, e tier.Entry) error {
	if err := s.writable("add"); err != nil {
		return err
	}
	record, err := s.encode(key, e)
	if err != nil {
		return err
	}
	now := s.opts.clock.Now()
	switch s.q.add(ctx, key, record, func(p pendingWrite) bool { return s.live([]byte(key), p.record, now) }) {
	case setClosed:
		return errClosed
	case setPresent:
		return fmt.Errorf("boltdb: add %.64q: %w", key, tier.ErrNotStored)
	case setDropped:
		s.stats.dropped.Add(1)
		return fmt.Errorf("boltdb: add %.64q: value not written: %w: %w", key, ErrQueueFull, ctx.Err())
	}
	return nil
}

// AddBulk implements tier.BulkAdder: it adds every entry entries yields,
// as Add does, calling done with Add's result for each, and returns early
// with ctx's error when ctx ends (done has then been called for the entry
// that found the queue full), or with an error wrapping tier.ErrClosed.
// It is how a producer that fills the durable tier in the background
// (a backfiller, a bulk load) gets back-pressure: it waits while the queue
// is full instead of losing entries, and stops when its ctx says so.
func (s *Store) AddBulk(ctx context.Context, entries iter.Seq2[string, tier.Entry], done func(key string, err error)) error {
	for key, e := range entries {
		err := s.Add(ctx, key, e)
		done(key, err)
		switch {
		case errors.Is(err, tier.ErrClosed):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		}
	}
	return nil
}

// live reports whether record, stored for key (its user form), is an
// entry Add must not replace at now: a sound record of an envelope that has
// not expired. nil, for a pending delete or a missing key, is not live. It
// decodes without copying the value, which it does not return.
func (s *Store) live(key, record []byte, now time.Time) bool {
	if record == nil {
		return false
	}
	env := record
	if !s.legacy {
		var ok bool
		if env, ok = checkRecord(key, record); !ok {
			return false
		}
	}
	e, err := tier.DecodeEntry(env)
	return err == nil && !e.Expired(now)
}

// encode checks that bbolt can hold key and e and returns e's record.
func (s *Store) encode(key string, e tier.Entry) ([]byte, error) {
	if len(key) > maxKeyLen {
		return nil, fmt.Errorf("boltdb: key of %d bytes, bbolt holds at most %d: %w", len(key), maxKeyLen, tier.ErrTooLarge)
	}
	if recordHeader+tier.EnvelopeLoadOverhead+len(e.Value) > maxRecordLen {
		return nil, fmt.Errorf("boltdb: value of %d bytes for %.64q: %w", len(e.Value), key, tier.ErrTooLarge)
	}
	return encodeRecord(key, e), nil
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
// of a batch carrying one of those writes that failed to commit, or ctx's
// error: nil means every write queued before the call reached the file.
// The writes of a failed batch are queued again, as they were, and
// retried; the overlay serves them meanwhile.
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
