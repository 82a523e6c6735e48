package boltdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/tiercache/tiercache/tier"
)

// scanItem is one entry read by Scan, copied out of bbolt memory.
type scanItem struct {
	key   string
	entry tier.Entry
	bad   bool // the record is not an envelope
	// damaged: the record fails its checksum (see Store.damaged).
	damaged bool
}

// readItem decodes the record v stored under the disk key k into a scanItem.
func (s *Store) readItem(k, v []byte) scanItem {
	e, err := s.decode(k[1:], v)
	return scanItem{key: userKey(k), entry: e, bad: err != nil, damaged: errors.Is(err, errChecksum)}
}

// skip reports whether a scan passes over it: a damaged record (a
// miss, handled as a read handles it) or one that is not an envelope.
func (s *Store) skip(it scanItem) bool {
	switch {
	case it.damaged:
		s.damaged(it.key)
	case it.bad:
		s.stats.badRecords.Add(1)
	default:
		return false
	}
	return true
}

// Scan calls fn for every entry, expired ones included, until fn returns
// an error, which Scan returns. Warmup uses it to copy the file into the
// tiers above.
//
// It reads the file in chunks, each in its own short read transaction,
// and calls fn with no transaction open: a read transaction held for the
// length of a long scan would keep bbolt from reusing freed pages and
// would stall the writer whenever it must grow the memory map. fn may
// therefore call the store, writes included.
//
// Writes still queued when Scan starts are merged in: a queued value
// replaces the file's, a queued delete hides it, and queued values for keys
// not in the file come last, in key order. Entries written while Scan runs
// may or may not be seen. Records that fail their checksum are skipped as
// Get skips them; records that are not envelopes are skipped and counted
// in "bad_records".
func (s *Store) Scan(ctx context.Context, fn func(key string, e tier.Entry) error) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	pending := s.q.snapshot()
	var after []byte
	for {
		if err := s.usable(ctx); err != nil {
			return err
		}
		items, last, err := s.readChunk(after)
		if err != nil {
			return fmt.Errorf("boltdb: scan %s: %w", s.path, err)
		}
		for _, it := range items {
			if record, ok := pending[it.key]; ok {
				delete(pending, it.key)
				if record == nil {
					continue
				}
				if it.entry, err = s.decode([]byte(it.key), record); err != nil {
					continue
				}
			} else if s.skip(it) {
				continue
			}
			if err := fn(it.key, it.entry); err != nil {
				return err
			}
		}
		if last == nil {
			break
		}
		after = last
	}
	keys := make([]string, 0, len(pending))
	for k, record := range pending {
		if record != nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		e, err := s.decode([]byte(k), pending[k])
		if err != nil {
			continue
		}
		if err := fn(k, e); err != nil {
			return err
		}
	}
	return nil
}

// readChunk reads up to scanChunk entries after the key after, in one read
// transaction. last is the chunk's last key, nil when the file holds no
// more entries.
func (s *Store) readChunk(after []byte) (items []scanItem, last []byte, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, v := seekAfter(c, after)
		for ; k != nil && len(items) < s.scanChunk; k, v = c.Next() {
			items = append(items, s.readItem(k, v))
			last = k
		}
		if k == nil {
			last = nil
		} else {
			last = bytes.Clone(last)
		}
		return nil
	})
	return items, last, err
}
