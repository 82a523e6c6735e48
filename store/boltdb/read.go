package boltdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"

	"github.com/tiercache/tiercache/tier"
)

// Get returns the entry stored for key, expired or not: the chain decides
// freshness. A write or delete still in the queue is seen at once, before
// it reaches the file. A hit in the file counts as a use of the key for
// eviction and ScanHot (see Recency in recency.go); it never writes. A key
// with no entry returns an error wrapping tier.ErrMiss, and so does a
// record that fails its checksum (see damaged); a sound record that is not
// an envelope returns an error wrapping tier.ErrBadEnvelope (the GC
// deletes such records).
func (s *Store) Get(ctx context.Context, key string) (tier.Entry, error) {
	if err := s.usable(ctx); err != nil {
		return tier.Entry{}, err
	}
	if record, ok := s.q.lookup(key); ok {
		if record == nil {
			return tier.Entry{}, errMiss
		}
		return s.decode([]byte(key), record)
	}
	if len(key) > maxKeyLen {
		return tier.Entry{}, errMiss // Set refuses such keys
	}
	var (
		e              tier.Entry
		found, damaged bool
	)
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		if b == nil {
			return nil
		}
		dk := diskKey(key)
		v := b.Get(dk)
		if v == nil {
			return nil
		}
		var err error
		e, err = s.decode(dk[1:], v)
		if errors.Is(err, errChecksum) {
			damaged = true
			return nil
		}
		found = true
		return err
	})
	switch {
	case damaged:
		s.damaged(key)
		return tier.Entry{}, errMiss
	case err != nil:
		return tier.Entry{}, s.readError("get", key, err)
	case !found:
		return tier.Entry{}, errMiss
	}
	s.used(key)
	return e, nil
}

// GetMulti looks keys up in the queue's overlay and then, for the rest, in
// one read transaction. Missing keys are absent from the map. Records that
// fail to decode are left out and reported, joined, in the error, beside
// everything that was found.
func (s *Store) GetMulti(ctx context.Context, keys []string) (map[string]tier.Entry, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	found := make(map[string]tier.Entry, len(keys))
	var errs []error
	rest := s.q.lookupMany(keys, func(key string, record []byte) {
		if record == nil {
			return
		}
		if e, err := s.decode([]byte(key), record); err == nil {
			found[key] = e
		}
	})
	if len(rest) == 0 {
		return found, nil
	}
	hits := make([]string, 0, len(rest))
	var damaged []string
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		if b == nil {
			return nil
		}
		dk := []byte{keyPrefix}
		for _, key := range rest {
			if len(key) > maxKeyLen {
				continue
			}
			if _, dup := found[key]; dup {
				continue
			}
			dk = append(dk[:1], key...)
			v := b.Get(dk)
			if v == nil {
				continue
			}
			e, err := s.decode(dk[1:], v)
			if errors.Is(err, errChecksum) {
				damaged = append(damaged, key)
				continue
			}
			if err != nil {
				errs = append(errs, s.readError("get", key, err))
				continue
			}
			found[key] = e
			hits = append(hits, key)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, s.readError("get multi", fmt.Sprintf("%d keys", len(rest)), err))
	}
	for _, key := range damaged {
		s.damaged(key)
	}
	if len(hits) > 0 {
		s.used(hits...)
	}
	return found, errors.Join(errs...)
}

// view runs fn in a read transaction, turning a panic or a memory fault on
// a damaged page into an error wrapping ErrCorrupt.
func (s *Store) view(fn func(tx *bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.recoverInto(&err)
	return closedErr(s.db.View(fn))
}

// readError names the operation, key and file in err, and counts records
// that are not envelopes.
func (s *Store) readError(op, key string, err error) error {
	if errors.Is(err, tier.ErrClosed) {
		return err
	}
	if errors.Is(err, tier.ErrBadEnvelope) {
		s.stats.badRecords.Add(1)
	}
	return fmt.Errorf("boltdb: %s %.64q in %s: %w", op, key, s.path, err)
}

// decode reads a record of the file or the overlay stored for key (its
// user form). A file of format 1, opened read-only and so not upgraded,
// holds bare envelopes, without a checksum to check.
func (s *Store) decode(key, record []byte) (tier.Entry, error) {
	if s.legacy {
		e, err := tier.DecodeEntry(record)
		if err == nil && !e.Negative {
			e.Value = bytes.Clone(e.Value)
		}
		return e, err
	}
	return readRecord(key, record)
}

// damaged handles a record of key that failed its checksum: a read has
// already treated it as a miss. It counts it, logs the first one the store
// meets (the count tells the rest), and queues its removal, so that a
// backfill can store a sound copy.
func (s *Store) damaged(key string) {
	if s.stats.checksumErrors.Add(1) == 1 {
		s.opts.logger.Warn("boltdb: a record failed its checksum, served as a miss and removed; later ones are counted in checksum_errors",
			"path", s.path, "key", fmt.Sprintf("%.64q", key))
	}
	if !s.opts.readOnly {
		s.q.scrub(key)
	}
}
