package boltdb

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The file holds five buckets:
//
//	entries  diskKey(key)      → record (record.go): checksum, flags, envelope
//	written  diskKey(key)      → write number (8 bytes, big endian)
//	order    write number      → diskKey(key)
//	used     use record number → the keys a batch used (see recency.go)
//	meta     "format", "count", "bytes", "next_write", "next_use",
//	         "used_keys" → uint64, big endian
//
// written and order form the age index the size cap evicts from: the
// oldest entry is order's first key, found in O(log n) without a scan. A
// write number is a counter persisted in meta, not a timestamp, so the
// order is exact even when the clock steps back. Keeping the index costs
// every put two extra bbolt puts and a delete of the key's previous order
// record, all in the batch's transaction.
//
// count and bytes are running totals kept in the same transactions, so the
// size cap and Counters never have to walk the file.
var (
	bucketEntries = []byte("entries")
	bucketWritten = []byte("written")
	bucketOrder   = []byte("order")
	bucketMeta    = []byte("meta")
	bucketUsed    = []byte("used")

	metaFormat    = []byte("format")
	metaCount     = []byte("count")
	metaBytes     = []byte("bytes")
	metaNextWrite = []byte("next_write")
	metaNextUse   = []byte("next_use")
	metaUsedKeys  = []byte("used_keys")
)

const (
	// layoutVersion is stored under meta "format"; Open refuses a file
	// written with a layout it does not know.
	//
	// Version 2 frames every entry with a checksum (record.go); version 1
	// stored the bare envelope. Open upgrades a version 1 file in place
	// before it returns (upgradeFile). The version moves rather than
	// records of both kinds living side by side because a file of mixed
	// records could not tell a damaged new record from an old one and
	// would serve the damage as an old record: only a file known to hold
	// nothing but checksummed records can promise that no damaged value
	// is served.
	layoutVersion       = 2
	layoutVersionLegacy = 1

	// keyPrefix starts every key in entries and written. bbolt rejects the
	// empty key, and the chain may hand us "": the prefix makes it one byte
	// long on disk.
	keyPrefix byte = 'k'

	// maxKeyLen is the longest key the store holds: bbolt's key limit
	// less the prefix byte.
	maxKeyLen = bolt.MaxKeySize - 1

	// maxRecordLen is the longest envelope bbolt stores as one value.
	maxRecordLen = bolt.MaxValueSize
)

// diskKey returns key as it is stored: keyPrefix followed by the key.
func diskKey(key string) []byte {
	k := make([]byte, 1+len(key))
	k[0] = keyPrefix
	copy(k[1:], key)
	return k
}

// userKey returns the key a diskKey stands for, copied out of bbolt memory.
func userKey(k []byte) string { return string(k[1:]) }

// recordSize is what one entry counts against WithMaxBytes.
func recordSize(k, record []byte) int64 { return int64(len(k) + len(record)) }

func uint64Bytes(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

func readUint64(b *bolt.Bucket, name []byte) uint64 {
	if b == nil {
		return 0
	}
	if v := b.Get(name); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// totals are the running entry count and byte size kept in meta.
type totals struct {
	entries int64
	bytes   int64
}

// readTotals returns the totals stored in tx, zero for a file without meta.
func readTotals(tx *bolt.Tx) totals {
	m := tx.Bucket(bucketMeta)
	return totals{entries: int64(readUint64(m, metaCount)), bytes: int64(readUint64(m, metaBytes))}
}

// createLayout creates the buckets of a new file and checks the layout
// version of an existing one.
func createLayout(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketEntries, bucketWritten, bucketOrder, bucketMeta, bucketUsed} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %q: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	v := meta.Get(metaFormat)
	if v == nil {
		return meta.Put(metaFormat, uint64Bytes(layoutVersion))
	}
	_, err := formatOf(tx)
	return err
}

// formatOf returns the layout version of the file in tx: 0 for a file
// without one yet, ErrCorrupt for one this package does not know.
func formatOf(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, nil
	}
	switch v := meta.Get(metaFormat); {
	case v == nil:
		return 0, nil
	case len(v) == 8 && (binary.BigEndian.Uint64(v) == layoutVersion || binary.BigEndian.Uint64(v) == layoutVersionLegacy):
		return binary.BigEndian.Uint64(v), nil
	default:
		return 0, fmt.Errorf("%w: unknown layout version %x", ErrCorrupt, v)
	}
}

// upgradeChunk is how many records one upgrade transaction rewrites.
const upgradeChunk = 10000

// upgradeFile rewrites the records of a version 1 file with their
// checksums, upgradeChunk per transaction, and then marks it version 2.
// A record that already checks out was rewritten by an upgrade that was
// interrupted, and is left as it is: a bare envelope passes a checksum by
// chance once in 2^32. The age index and the use log do not change; the
// byte total grows by the headers.
func upgradeFile(db *bolt.DB) error {
	var after []byte
	for {
		done := false
		err := db.Update(func(tx *bolt.Tx) error {
			if v, err := formatOf(tx); err != nil || v != layoutVersionLegacy {
				done = true
				return err
			}
			l, err := openLayout(tx)
			if err != nil {
				return err
			}
			var keys, records [][]byte
			c := l.entries.Cursor()
			k, v := seekAfter(c, after)
			for ; k != nil && len(keys) < upgradeChunk; k, v = c.Next() {
				if !sound(k[1:], v) {
					keys = append(keys, bytes.Clone(k))
					records = append(records, frameRecord(k[1:], v))
				}
				after = bytes.Clone(k)
			}
			for i, k := range keys {
				if err := l.entries.Put(k, records[i]); err != nil {
					return err
				}
				l.totals.bytes += recordHeader
			}
			if k == nil {
				done = true
				if err := l.meta.Put(metaFormat, uint64Bytes(layoutVersion)); err != nil {
					return err
				}
			}
			return l.save()
		})
		if err != nil {
			return fmt.Errorf("upgrade to layout version %d: %w", layoutVersion, err)
		}
		if done {
			return nil
		}
	}
}

// layout is the file's buckets inside one read-write transaction. Every
// change to entries goes through it so that the age index and the totals
// stay in step. It is valid only inside that transaction.
type layout struct {
	entries, written, order, meta *bolt.Bucket
	totals                        totals
	nextWrite                     uint64
}

func openLayout(tx *bolt.Tx) (*layout, error) {
	l := &layout{
		entries: tx.Bucket(bucketEntries),
		written: tx.Bucket(bucketWritten),
		order:   tx.Bucket(bucketOrder),
		meta:    tx.Bucket(bucketMeta),
	}
	if l.entries == nil || l.written == nil || l.order == nil || l.meta == nil {
		return nil, fmt.Errorf("%w: a bucket is missing", ErrCorrupt)
	}
	l.totals = readTotals(tx)
	l.nextWrite = readUint64(l.meta, metaNextWrite)
	return l, nil
}

// put stores record under k and makes k the newest entry in the age index.
func (l *layout) put(k, record []byte) error {
	return l.replace(k, l.entries.Get(k), record)
}

// replace is put for a caller that has looked k up already: old is what
// entries holds for k, nil for nothing.
func (l *layout) replace(k, old, record []byte) error {
	if old != nil {
		l.totals.entries--
		l.totals.bytes -= recordSize(k, old)
	}
	if err := l.unindex(k); err != nil {
		return err
	}
	l.nextWrite++
	wn := uint64Bytes(l.nextWrite)
	if err := l.entries.Put(k, record); err != nil {
		return err
	}
	if err := l.written.Put(k, wn); err != nil {
		return err
	}
	if err := l.order.Put(wn, k); err != nil {
		return err
	}
	l.totals.entries++
	l.totals.bytes += recordSize(k, record)
	return nil
}

// remove deletes k and its index records. It reports whether an entry was
// there.
func (l *layout) remove(k []byte) (bool, error) {
	if err := l.unindex(k); err != nil {
		return false, err
	}
	if err := l.written.Delete(k); err != nil {
		return false, err
	}
	old := l.entries.Get(k)
	if old == nil {
		return false, nil
	}
	l.totals.entries--
	l.totals.bytes -= recordSize(k, old)
	return true, l.entries.Delete(k)
}

// unindex deletes k's record in order, leaving written to the caller.
func (l *layout) unindex(k []byte) error {
	wn := l.written.Get(k)
	if wn == nil {
		return nil
	}
	return l.order.Delete(bytes.Clone(wn))
}

func (l *layout) overCap(maxEntries int, maxBytes int64) bool {
	return (maxEntries > 0 && l.totals.entries > int64(maxEntries)) ||
		(maxBytes > 0 && l.totals.bytes > maxBytes)
}

// evictOver deletes the oldest entries while the totals exceed a cap, at
// most limit of them so that one transaction stays small; the GC trims
// whatever is left. It returns how many entries it evicted.
func (l *layout) evictOver(maxEntries int, maxBytes int64, limit int) (int, error) {
	evicted := 0
	for step := 0; step < limit && l.overCap(maxEntries, maxBytes); step++ {
		wn, k := l.order.Cursor().First()
		if wn == nil {
			break // entries the index does not know of; nothing to evict by age
		}
		wn, k = bytes.Clone(wn), bytes.Clone(k)
		if !bytes.Equal(l.written.Get(k), wn) {
			// A stray record whose key has been rewritten since: drop it.
			if err := l.order.Delete(wn); err != nil {
				return evicted, err
			}
			continue
		}
		removed, err := l.remove(k)
		if err != nil {
			return evicted, err
		}
		if removed {
			evicted++
		}
	}
	return evicted, nil
}

// save stores the totals and the write counter back into meta.
func (l *layout) save() error {
	for _, kv := range []struct {
		name []byte
		n    uint64
	}{
		{metaCount, uint64(l.totals.entries)},
		{metaBytes, uint64(l.totals.bytes)},
		{metaNextWrite, l.nextWrite},
	} {
		if err := l.meta.Put(kv.name, uint64Bytes(kv.n)); err != nil {
			return err
		}
	}
	return nil
}
