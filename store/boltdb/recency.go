package boltdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tiercache/tiercache/tier"
)

// Recency.
//
// The file keeps a use log, so that ScanHot can list the entries used
// most recently first and a warmup bring the working set back before the
// long tail. Every batch the writer commits appends one record to the
// "used" bucket: the keys the batch wrote, and the keys reads found in the
// file since the last batch (touches). Records are numbered in commit
// order; reading them newest first lists keys by their last use. In a
// chain, a key in use is read from the file at least once per TTL of the
// tier above (whenever the copy up there expires), so the log follows the
// working set.
//
// The log is append-only because that is what bbolt writes cheaply: one
// record of about len(key)+1 bytes per key, on pages of its own, where
// moving a key within an index would rewrite a random page of it per key.
// It holds at most WithRecencyLog key uses: past that, the oldest records
// are deleted in the same transaction. A key used again appears again; the
// older mention is skipped by ScanHot, and drops off the end in time.
//
// A read never writes. A Get or GetMulti hit in the file costs one hash and
// an atomic load (touchFilter), and, the first time in a touchPeriod that
// a key is read, a lock and a map insert to queue the touch. Touches ride
// with the next batch of writes, or go alone at most once per touchDelay;
// at most WithQueueSize of them wait, and the rest are dropped and
// counted, never waited for.
const (
	// hotShare: ScanHot follows the use log until it has listed
	// 1/hotShare of the file's entries.
	hotShare = 4
	// touchPeriod is how often one key's reads are logged: a key read
	// many times in a period is touched once.
	touchPeriod = time.Minute
	// touchDelay is how long touches alone wait for the writer.
	touchDelay = time.Second
	// touchSlots is the size of touchFilter: 512 KiB.
	touchSlots = 1 << 16
)

// touchFilter remembers which keys were touched in the current period, in
// a fixed table indexed by the key's hash. A key that loses its slot to
// another is touched again, which costs a redundant log entry, never a
// lost one. It is safe for concurrent use.
type touchFilter struct {
	seed  maphash.Seed
	slots [touchSlots]atomic.Uint64
}

func newTouchFilter() *touchFilter { return &touchFilter{seed: maphash.MakeSeed()} }

// first reports whether key has not been touched yet in period, and
// records that it now has.
func (f *touchFilter) first(key string, period int64) bool {
	h := maphash.String(f.seed, key)
	tag := h ^ uint64(period)*0x9e3779b97f4a7c15 // spread the period over every bit
	slot := &f.slots[h%touchSlots]
	if slot.Load() == tag {
		return false
	}
	slot.Store(tag)
	return true
}

// used records reads that found keys in the file.
func (s *Store) used(keys ...string) {
	if s.opts.readOnly || s.opts.recencyLog == 0 {
		return
	}
	period := s.opts.clock.Now().UnixNano() / int64(touchPeriod)
	for _, k := range keys {
		if s.touched.first(k, period) && !s.q.touch(k) {
			s.stats.touchesDropped.Add(1)
		}
	}
}

// logUses appends to the use log, in the writer's transaction, the keys a
// batch wrote and the keys touched since the last batch (ScanHot skips
// those deleted since), then deletes the oldest
// records while the log holds more than limit key uses. It returns how
// many touches it logged.
func logUses(tx *bolt.Tx, writes []write, touches []string, limit int) (int, error) {
	used, meta := tx.Bucket(bucketUsed), tx.Bucket(bucketMeta)
	if used == nil || limit == 0 {
		return 0, nil
	}
	var (
		keys    []byte
		n       int
		touched int
		written = make(map[string]bool, len(writes))
	)
	for _, w := range writes {
		if w.record != nil && !written[w.key] {
			written[w.key] = true
			keys = appendLogKey(keys, w.key)
			n++
		}
	}
	for _, k := range touches {
		if written[k] {
			continue // logged as a write
		}
		keys = appendLogKey(keys, k)
		n++
		touched++
	}
	if n == 0 {
		return 0, nil
	}
	seq := readUint64(meta, metaNextUse) + 1
	record := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(keys)), uint64(n))
	record = append(record, keys...)
	if err := used.Put(uint64Bytes(seq), record); err != nil {
		return 0, err
	}
	total := readUint64(meta, metaUsedKeys) + uint64(n)
	c := used.Cursor()
	for k, v := c.First(); k != nil && total > uint64(limit) && binary.BigEndian.Uint64(k) != seq; k, v = c.First() {
		count, _ := binary.Uvarint(v)
		total -= min(total, count)
		if err := used.Delete(bytes.Clone(k)); err != nil {
			return 0, err
		}
	}
	if err := meta.Put(metaNextUse, uint64Bytes(seq)); err != nil {
		return 0, err
	}
	return touched, meta.Put(metaUsedKeys, uint64Bytes(total))
}

func appendLogKey(b []byte, key string) []byte {
	b = binary.AppendUvarint(b, uint64(len(key)))
	return append(b, key...)
}

var errBadUseRecord = errors.New("malformed use record")

// logKeys calls fn for each key of a use record, newest last.
func logKeys(record []byte, fn func(key []byte)) error {
	n, size := binary.Uvarint(record)
	if size <= 0 {
		return errBadUseRecord
	}
	rest := record[size:]
	for range n {
		l, size := binary.Uvarint(rest)
		if size <= 0 || l > uint64(len(rest)-size) {
			return errBadUseRecord
		}
		fn(rest[size : size+int(l)])
		rest = rest[size+int(l):]
	}
	return nil
}

var (
	_ tier.HotScanner = (*Store)(nil)
	_ tier.Sized      = (*Store)(nil)
)

// Len returns the number of entries in the file as of the last commit,
// without reading it.
func (s *Store) Len() int64 { return s.stats.diskEntries.Load() }

// ScanHot is Scan in order of last use, most recent first: writes still
// queued, then the keys of the use log from the newest record to the
// oldest (see WithRecencyLog), then every other entry in key order. A
// warmup prefers it to Scan, so that the working set goes back first.
//
// Each key the log names costs a lookup in the file's index, several
// times the cost of reading the next entry in key order, and a slot in
// the set of keys already listed. So ScanHot follows the log only until
// it has listed a quarter of the file's entries (hotShare) and reads the
// rest in key order: a working set is rarely larger, and past it the
// order matters less than reading fast.
//
// Like Scan, it reads the file in chunks, each in its own read
// transaction, and calls fn with none open, so fn may call the store.
// Entries written while it runs may or may not be seen. To skip, in the
// last part, the keys the log listed, it remembers a 64-bit hash of each:
// about 20 bytes of memory per key of the log while it runs. Two keys
// whose hashes collide (odds of 1 in 2^64 per pair) would leave the second
// one out. Records are skipped as Scan skips them.
func (s *Store) ScanHot(ctx context.Context, fn func(key string, e tier.Entry) error) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	pending := s.q.snapshot()
	queued := make([]string, 0, len(pending))
	for k, record := range pending {
		if record != nil {
			queued = append(queued, k)
		}
	}
	slices.Sort(queued)
	for _, k := range queued {
		e, err := s.decode([]byte(k), pending[k])
		if err != nil {
			continue
		}
		if err := fn(k, e); err != nil {
			return err
		}
	}
	hotLimit := max(s.Len()/hotShare, int64(s.scanChunk))
	seen := keySet{seed: maphash.MakeSeed(), m: make(map[uint64]struct{}, min(hotLimit, int64(s.opts.recencyLog)))}
	found, fileEntries := int64(0), int64(-1)
	yield := func(items []scanItem) error {
		for _, it := range items {
			if s.skip(it) {
				continue
			}
			if err := fn(it.key, it.entry); err != nil {
				return err
			}
		}
		return nil
	}
	for before := []byte(nil); ; {
		if err := s.usable(ctx); err != nil {
			return err
		}
		items, last, entries, err := s.readUsedChunk(before, pending, &seen)
		if err != nil {
			return fmt.Errorf("boltdb: scan hot %s: %w", s.path, err)
		}
		found += int64(len(items))
		if err := yield(items); err != nil {
			return err
		}
		if last == nil {
			fileEntries = entries
			break
		}
		if found >= hotLimit {
			break
		}
		before = last
	}
	if fileEntries >= 0 && found >= fileEntries {
		// The log named every entry the file held as it was read last:
		// nothing is left for the pass in key order.
		return nil
	}
	for after := []byte(nil); ; {
		if err := s.usable(ctx); err != nil {
			return err
		}
		items, last, err := s.readChunk(after)
		if err != nil {
			return fmt.Errorf("boltdb: scan hot %s: %w", s.path, err)
		}
		items = slices.DeleteFunc(items, func(it scanItem) bool {
			_, queued := pending[it.key]
			return queued || seen.has(it.key)
		})
		if err := yield(items); err != nil {
			return err
		}
		if last == nil {
			return nil
		}
		after = last
	}
}

// readUsedChunk reads use records numbered below before (from the newest
// when before is nil), newest first, until it has about scanChunk entries,
// in one read transaction. It returns the entries of the keys they list
// that the file holds, are not pending and were not seen yet, and marks
// them seen. last is the oldest record read, nil when there are no more;
// entries is how many entries the file held in that transaction.
func (s *Store) readUsedChunk(before []byte, pending map[string][]byte, seen *keySet) (items []scanItem, last []byte, entries int64, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		entries = readTotals(tx).entries
		used, bucket := tx.Bucket(bucketUsed), tx.Bucket(bucketEntries)
		if used == nil || bucket == nil {
			return nil
		}
		c := used.Cursor()
		var seq, record []byte
		if before == nil {
			seq, record = c.Last()
		} else if seq, _ = c.Seek(before); seq == nil {
			seq, record = c.Last()
		} else {
			seq, record = c.Prev()
		}
		var (
			keys [][]byte
			dk   = []byte{keyPrefix}
		)
		for ; seq != nil && len(items) < s.scanChunk; seq, record = c.Prev() {
			last = seq
			keys = keys[:0]
			if logKeys(record, func(k []byte) { keys = append(keys, k) }) != nil {
				s.stats.badRecords.Add(1)
				continue
			}
			for _, k := range slices.Backward(keys) {
				key := string(k)
				if _, ok := pending[key]; ok || !seen.addNew(key) {
					continue // listed already: a more recent use, or a queued write
				}
				dk = append(dk[:1], k...)
				v := bucket.Get(dk)
				if v == nil {
					continue // deleted since
				}
				items = append(items, s.readItem(dk, v))
			}
		}
		if seq == nil {
			last = nil
		} else {
			last = bytes.Clone(last)
		}
		return nil
	})
	return items, last, entries, err
}

// keySet is a set of keys held as 64-bit hashes. It is not safe for
// concurrent use.
type keySet struct {
	seed maphash.Seed
	m    map[uint64]struct{}
}

func (s *keySet) has(key string) bool { _, ok := s.m[maphash.String(s.seed, key)]; return ok }

// addNew adds key and reports whether it was not in the set yet, with one
// map operation.
func (s *keySet) addNew(key string) bool {
	n := len(s.m)
	s.m[maphash.String(s.seed, key)] = struct{}{}
	return len(s.m) > n
}
