package boltdb

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// writeQueue is the write-behind queue and the overlay of writes not yet on
// disk. It is safe for concurrent use.
//
// It holds at most one pending write per key: a write to a key that is
// still waiting replaces the waiting one in place (it coalesces), so a hot
// key takes one slot and is written once per batch, and the last write
// wins on disk as it does in the overlay. The FIFO orders keys by when
// they first became pending; positions in it are numbered so that Flush
// can wait for "everything queued before me" even though a coalesced write
// keeps its key's old position.
//
// A pending write stays in the overlay until the batch carrying it has
// committed; only then do readers go to the file for that key. seq tells a
// committed write from a newer one that superseded it meanwhile.
type writeQueue struct {
	valueLimit int // FIFO length at which Sets and Adds wait for room
	keyLimit   int // FIFO length at which Deletes wait for room
	batchSize  int

	mu       sync.Mutex
	pending  map[string]pendingWrite
	fifo     []string
	seq      uint64
	enqueued uint64 // FIFO positions handed out
	taken    uint64 // FIFO positions the writer has taken
	done     uint64 // FIFO positions committed, or given up on
	failures []batchFailure
	// forgotten is the end of the newest failure dropped from failures
	// to bound it; a Flush that began before it reports a failure.
	forgotten uint64
	urgent    bool // someone waits on the writer: do not wait for a full batch
	closed    bool // no more writes are admitted
	stopped   bool // the writer has exited
	changed   chan struct{}

	// wake tells the writer there is work. It has room for one signal, so
	// signalling never blocks and a signal sent while the writer is busy
	// is still there when it looks.
	wake chan struct{}

	// pendingN mirrors len(pending) so that reads can skip the lock when
	// nothing is pending, the usual case for a read-mostly cache.
	pendingN atomic.Int64

	// touches are keys read from the file, for the use log (recency.go).
	// They hold no value and nobody waits for them: at most valueLimit
	// are kept, the rest dropped, and they ride with the next batch of
	// writes or go alone at most once per touchDelay. They have a lock of
	// their own so that reads never wait on writes for it.
	touchMu sync.Mutex
	touches map[string]struct{}
}

// op is what a pending write does to its key.
type op uint8

const (
	opSet    op = iota // store record
	opAdd              // store record unless the file holds a live entry
	opDelete           // remove the key
	opScrub            // remove the key's record if it fails its checksum
)

// pendingWrite is the newest write to one key that is not yet on disk.
type pendingWrite struct {
	record []byte // the record (record.go); nil for a delete or a scrub
	op     op
	seq    uint64
	queued bool // still in the FIFO; false once the writer has taken it
}

// write is one pending write as the writer applies it.
type write struct {
	key    string
	record []byte
	op     op
	seq    uint64
}

// batch is a run of writes taken from the FIFO, ending at FIFO position
// end, and the touches taken with it.
type batch struct {
	writes  []write
	end     uint64
	touches []string
}

// batchFailure remembers the FIFO positions (from, to] of a batch that
// did not commit, so that Flush can report it.
type batchFailure struct {
	from, to uint64
	err      error
}

func newWriteQueue(queueSize, batchSize int) *writeQueue {
	return &writeQueue{
		valueLimit: queueSize,
		keyLimit:   2 * queueSize,
		batchSize:  batchSize,
		pending:    make(map[string]pendingWrite),
		touches:    make(map[string]struct{}),
		changed:    make(chan struct{}),
		wake:       make(chan struct{}, 1),
	}
}

// setOutcome says what became of a Set or an Add.
type setOutcome int

const (
	setQueued      setOutcome = iota
	setPresent                // Add: a live value is queued for the key
	setInvalidated            // ctx ended while waiting for room: queued as a delete
	setDropped                // ctx ended while waiting for room, even for a delete
	setClosed
)

// set queues record for key, waiting for room while the queue holds
// valueLimit keys. When ctx ends first, the key is queued as a delete if
// the deletes' reserve has room, so that an older copy on disk is not
// served in place of the write that was not queued.
func (q *writeQueue) set(ctx context.Context, key string, record []byte) setOutcome {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		switch {
		case q.closed:
			return setClosed
		case q.coalesce(key, record, opSet):
			return setQueued
		case len(q.fifo) < q.valueLimit:
			q.push(key, record, opSet)
			return setQueued
		}
		if q.waitLocked(ctx) != nil {
			if q.coalesce(key, nil, opDelete) {
				return setInvalidated
			}
			if len(q.fifo) < q.keyLimit {
				q.push(key, nil, opDelete)
				return setInvalidated
			}
			return setDropped
		}
	}
}

// add queues record for key unless the overlay holds a live value for it
// at now, waiting for room like set. The queued write is an opAdd, which
// the writer applies only if the file holds no live entry then: Add reads
// nothing from the file. A key whose pending write is a delete or an
// expired value is absent whatever the file holds, so the add becomes a
// set, and so the delete can never be undone by an add kept out by the
// value it deleted.
func (q *writeQueue) add(ctx context.Context, key string, record []byte, live func(p pendingWrite) bool) setOutcome {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.closed {
			return setClosed
		}
		kind := opAdd
		if p, ok := q.pending[key]; ok {
			if live(p) {
				return setPresent
			}
			kind = opSet
		}
		switch {
		case q.coalesce(key, record, kind):
			return setQueued
		case len(q.fifo) < q.valueLimit:
			q.push(key, record, kind)
			return setQueued
		}
		if q.waitLocked(ctx) != nil {
			return setDropped // the key is absent: nothing older is served
		}
	}
}

// del queues a delete of key, waiting for room when the queue is full:
// an invalidation is never dropped. It fails only when ctx ends first or
// the queue is closed.
func (q *writeQueue) del(ctx context.Context, key string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		switch {
		case q.closed:
			return errClosed
		case q.coalesce(key, nil, opDelete):
			return nil
		case len(q.fifo) < q.keyLimit:
			q.push(key, nil, opDelete)
			return nil
		}
		if err := q.waitLocked(ctx); err != nil {
			return err
		}
	}
}

// scrub queues the removal of key's record if it still fails its
// checksum when the writer gets to it. A key with a pending write needs
// none: that write replaces the record. Nobody waits for a scrub: with
// the queue full it is left to the next read that meets the record.
func (q *writeQueue) scrub(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.pending[key]; ok || q.closed || len(q.fifo) >= q.valueLimit {
		return
	}
	q.push(key, nil, opScrub)
}

// waitLocked tells the writer to hurry and waits for the queue to change,
// or for ctx to end. Callers hold q.mu; it is held again on return.
func (q *writeQueue) waitLocked(ctx context.Context) error {
	q.hurry()
	changed := q.changed
	q.mu.Unlock()
	defer q.mu.Lock()
	select {
	case <-changed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// coalesce replaces the waiting write to key, if there is one. Callers
// hold q.mu.
func (q *writeQueue) coalesce(key string, record []byte, kind op) bool {
	p, ok := q.pending[key]
	if !ok || !p.queued {
		return false
	}
	q.seq++
	p.record, p.op, p.seq = record, kind, q.seq
	q.pending[key] = p
	return true
}

// push gives key a new FIFO slot. Callers hold q.mu.
func (q *writeQueue) push(key string, record []byte, kind op) {
	q.seq++
	q.pending[key] = pendingWrite{record: record, op: kind, seq: q.seq, queued: true}
	q.pendingN.Store(int64(len(q.pending)))
	q.fifo = append(q.fifo, key)
	q.enqueued++
	if n := len(q.fifo); n == 1 || n == q.batchSize {
		q.signal()
	}
}

func (q *writeQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// hurry tells the writer not to wait for a full batch. Callers hold q.mu.
func (q *writeQueue) hurry() {
	q.urgent = true
	q.signal()
}

// broadcast wakes everyone waiting on q.changed. Callers hold q.mu.
func (q *writeQueue) broadcast() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// lookup returns the pending write for key: ok is false when there is none,
// and record is nil for a pending delete.
func (q *writeQueue) lookup(key string) (record []byte, ok bool) {
	if q.pendingN.Load() == 0 {
		return nil, false
	}
	q.mu.Lock()
	p, ok := q.pending[key]
	q.mu.Unlock()
	return p.record, ok
}

// lookupMany calls found for every key with a pending write and returns
// the keys without one. found must not call back into q.
func (q *writeQueue) lookupMany(keys []string, found func(key string, record []byte)) []string {
	if q.pendingN.Load() == 0 {
		return keys
	}
	rest := make([]string, 0, len(keys))
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, k := range keys {
		if p, ok := q.pending[k]; ok {
			found(k, p.record)
		} else {
			rest = append(rest, k)
		}
	}
	return rest
}

// isPending reports whether key has a write not yet committed.
func (q *writeQueue) isPending(key string) bool {
	_, ok := q.lookup(key)
	return ok
}

// snapshot copies the overlay: key → record, nil for a pending delete.
func (q *writeQueue) snapshot() map[string][]byte {
	if q.pendingN.Load() == 0 {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	m := make(map[string][]byte, len(q.pending))
	for k, p := range q.pending {
		m[k] = p.record
	}
	return m
}

// touch queues key for the use log. It reports false when the queue of
// touches is full and key was dropped.
func (q *writeQueue) touch(key string) bool {
	q.touchMu.Lock()
	defer q.touchMu.Unlock()
	if _, ok := q.touches[key]; ok {
		return true
	}
	if len(q.touches) >= q.valueLimit {
		return false
	}
	q.touches[key] = struct{}{}
	if n := len(q.touches); n == 1 || n == q.batchSize {
		q.signal()
	}
	return true
}

// takeTouches removes up to max touches and returns them.
func (q *writeQueue) takeTouches(max int) []string {
	q.touchMu.Lock()
	defer q.touchMu.Unlock()
	var keys []string
	for k := range q.touches {
		if len(keys) == max {
			break
		}
		keys = append(keys, k)
		delete(q.touches, k)
	}
	return keys
}

// ready reports whether the writer should commit without waiting longer.
func (q *writeQueue) ready() bool {
	q.mu.Lock()
	urgent := q.urgent || len(q.fifo) >= q.batchSize
	q.mu.Unlock()
	return urgent || q.touchDepth() >= q.batchSize
}

// hasWrites reports whether writes, not only touches, wait for the writer.
func (q *writeQueue) hasWrites() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.fifo) > 0
}

// take removes up to max keys from the head of the FIFO and returns their
// writes, with up to max touches. The writes' overlay entries stay until
// finish; a batch of touches alone needs no finish.
func (q *writeQueue) take(max int) batch {
	b := batch{touches: q.takeTouches(max)}
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(max, len(q.fifo))
	if n == 0 {
		q.urgent = false
		return b
	}
	writes := make([]write, n)
	for i, key := range q.fifo[:n] {
		p := q.pending[key]
		p.queued = false
		q.pending[key] = p
		writes[i] = write{key: key, record: p.record, op: p.op, seq: p.seq}
	}
	clear(q.fifo[:n])
	if n == len(q.fifo) {
		q.fifo = q.fifo[:0]
		q.urgent = false
	} else {
		q.fifo = q.fifo[n:]
	}
	q.taken += uint64(n)
	q.broadcast() // room for waiting deletes
	b.writes, b.end = writes, q.taken
	return b
}

// maxFailures bounds the failed batches remembered for Flush.
const maxFailures = 64

// finish records the outcome of committing b. On success, or on failure
// when requeue is false (the store is closing), the writes leave the
// overlay unless a newer write superseded them; finish then returns the
// writes lost, which the caller reports. On failure with requeue, every
// write not superseded goes back into the FIFO as it was, to be retried:
// the overlay keeps serving it meanwhile, so no older copy shows, and
// nothing is given up while the store runs.
func (q *writeQueue) finish(b batch, err error, requeue bool) (lost int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, w := range b.writes {
		p, ok := q.pending[w.key]
		if !ok || p.seq != w.seq {
			continue
		}
		if err != nil && requeue {
			p.queued = true
			q.pending[w.key] = p
			q.fifo = append(q.fifo, w.key)
			q.enqueued++
			continue
		}
		if err != nil && w.op != opScrub {
			lost++
		}
		delete(q.pending, w.key)
	}
	q.pendingN.Store(int64(len(q.pending)))
	q.done = b.end
	if err != nil {
		if len(q.failures) == maxFailures {
			q.forgotten = q.failures[0].to
			q.failures = q.failures[1:]
		}
		q.failures = append(q.failures, batchFailure{from: b.end - uint64(len(b.writes)), to: b.end, err: err})
	}
	q.broadcast()
	return lost
}

// waitFlushed waits until every write queued before the call has been
// committed, and returns the error of a failed batch that carried one of
// them.
func (q *writeQueue) waitFlushed(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	target, start := q.enqueued, q.done
	if target > start {
		q.hurry()
	}
	for q.done < target {
		if q.stopped {
			return errClosed
		}
		changed := q.changed
		q.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			q.mu.Lock()
			return ctx.Err()
		}
		q.mu.Lock()
	}
	if start < q.forgotten {
		return fmt.Errorf("boltdb: more than %d batches failed to commit since Flush began: %w", maxFailures, q.failures[0].err)
	}
	for _, f := range q.failures {
		if f.to > start && f.from < target {
			return f.err
		}
	}
	return nil
}

// close stops admitting writes and wakes deletes waiting for room.
func (q *writeQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.broadcast()
}

// stop records that the writer has exited, waking any Flush still waiting.
func (q *writeQueue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	q.broadcast()
}

// depth returns the number of keys waiting in the FIFO and the number
// with writes not yet committed.
func (q *writeQueue) depth() (queued, pending int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.fifo), len(q.pending)
}

// touchDepth returns the number of touches waiting for the writer.
func (q *writeQueue) touchDepth() int {
	q.touchMu.Lock()
	defer q.touchMu.Unlock()
	return len(q.touches)
}
