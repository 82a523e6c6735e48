package boltdb

import (
	"bytes"
	"context"
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
// may or may not be seen. Records that are not envelopes are skipped and
// counted in "bad_records".
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
				if it.entry, err = decodeRecord(record); err != nil {
					continue
				}
			} else if it.bad {
				s.stats.badRecords.Add(1)
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
		e, err := decodeRecord(pending[k])
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
			e, derr := decodeRecord(v)
			it := scanItem{key: userKey(k), entry: e, bad: derr != nil}
			items = append(items, it)
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
