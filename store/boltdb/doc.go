// Package boltdb is the durable tier of a tiercache chain: entries kept in
// a bbolt file on local disk, so that a cache that survives a memcached
// restart answers instead of the database.
//
// # Basics
//
// Open a file, hand the Store to tier.New as a tier, and Close it on the
// way out:
//
//	disk, err := boltdb.Open("/var/lib/app/cache.db", boltdb.WithGCInterval(time.Minute))
//	if err != nil { ... }
//	defer disk.Close()
//
// A Store implements tier.Tier, tier.Adder, tier.BulkAdder, tier.MultiGetter (one read
// transaction for the whole batch), tier.Scanner and tier.HotScanner (for
// warmup), tier.Sized and tier.Counter. Each entry is stored as its tier envelope, so its absolute
// expiry travels with it. Get returns entries whether or not they have
// expired: the chain decides what is fresh, and a stale copy is what it
// serves when the database is down.
//
// # Writes are behind the caller
//
// Set, Add and Delete do not wait for the disk unless the queue is full.
// They put the write in a bounded queue and in an overlay that Get, GetMulti and Scan consult
// first, so a write, and above all a delete, is visible at once. One
// goroutine drains the queue, applying a batch of writes in one bbolt
// transaction: one commit, one fsync, for up to WithBatchSize writes. Two
// writes to the same key before the writer takes it become one, and for
// each key the last write wins, on disk as in the overlay. Flush waits for
// what was queued before it; Close writes everything queued.
//
// When the queue is full, Set and Add wait for room, for as long as the
// caller's context allows: the queue's bound is the back-pressure that
// keeps a producer faster than the disk from losing writes. One whose
// context ends first returns an error wrapping ErrQueueFull; a Set then
// queues a delete instead, so that an older copy on disk is not served in
// place of the value. A Delete is never dropped: deletes may use a second
// queue's worth of slots, and past that Delete waits for room.
//
// Add reads nothing from the file: the writer stores an added value only
// if the file holds no live entry for the key, inside the transaction that
// would write it. A backfill costs a map insert on the caller's side and a
// bbolt lookup the writer's put makes anyway.
//
// A batch that fails to commit is retried as it was, with a backoff, its
// writes served from the overlay meanwhile; Flush returns the failure to
// those waiting for its writes. Close tries what is left once more and
// returns an error wrapping ErrLostWrites that counts the writes whose
// last attempt failed: a nil from Close means every accepted write is in
// the file.
//
// # Integrity
//
// bbolt checks its meta pages, not the data in its pages. Every record
// carries a CRC-32C of its key and bytes (see layoutVersion for why the
// file format moved to add it). Get, GetMulti, Scan, ScanHot and the GC
// check it; a record that fails is a miss, counted in "checksum_errors",
// logged the first time (WithLogger), and removed by the writer unless a
// write to the key replaces it first. A damaged value is never returned.
//
// # Expiry, GC and the size cap
//
// A background GC (WithGCInterval) deletes entries that expired more than
// WithGCGrace ago, and records that are not envelopes, reading the file in
// chunks and deleting WithGCBatch entries per transaction. A pass reads the
// whole file: with a million entries, count on a fraction of a second of
// one core per pass.
//
// WithMaxEntries and WithMaxBytes cap the store; the entries written
// longest ago are evicted first, found in O(log n) through an age index
// kept in the same transactions as the writes. The index is kept whether or
// not a cap is set, so a cap can be added to an existing file: it costs
// every write two more bbolt records, about twice the key's length plus 20
// bytes on disk per entry.
//
// # Recency
//
// So that a warmup after a memcached restart sends the working set first,
// the file keeps a use log: every batch the writer commits appends one
// record listing the keys it wrote and the keys reads found in the file
// since the last batch. ScanHot lists queued writes, then the log's keys
// from the newest record back, then every other entry in key order.
// WithRecencyLog bounds the log (by default to the last million uses).
//
// Reads never write: a Get or GetMulti hit queues the key (once per minute
// per key, through a small lossy filter) and the writer logs it with its
// next batch, or alone at most once a second. The log is append-only,
// which bbolt writes cheaply: about len(key)+1 bytes per use, where moving
// a key within an index would rewrite a random page per key. The cost on
// the read path is a hash and an atomic load, and for the first read of a
// key in a minute a lock and a map insert: measured with
// BenchmarkGetMulti100, which reads every key of a 100,000-entry file
// several hundred times a minute, about 7% more CPU on the readers and 8%
// on the writer. Touches that find the queue full are dropped and counted.
//
// # Caveats
//
// A file is held by one Store at a time: bbolt takes an exclusive flock,
// and a second Open, in this process or another, fails after
// WithLockTimeout with ErrLocked. WithReadOnly opens it shared, for tools.
//
// bbolt trusts its file. Open checks the meta pages, the file's length and
// the bucket roots and reports a damaged file as ErrCorrupt, or moves it
// aside with WithQuarantineCorrupt; damage deeper in the file shows up as
// ErrCorrupt from the read that meets it, never as a crash.
//
// Keys are stored behind a one-byte prefix so that the empty key, which
// bbolt refuses, is a key like any other. Keys may be up to 32767 bytes.
//
// A bbolt file never shrinks; space freed by deletes is reused.
package boltdb
