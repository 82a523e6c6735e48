package boltdb

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
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
	valueLimit int // FIFO length at which Sets stop being admitted
	keyLimit   int // FIFO length at which Deletes wait for room
	batchSize  int

	mu       sync.Mutex
	pending  map[string]pendingWrite
	fifo     []string
	seq      uint64
	enqueued uint64 // FIFO positions handed out
	taken    uint64 // FIFO positions the writer has taken
	done     uint64 // FIFO positions committed, or given up on
	failure  batchFailure
	urgent   bool // someone waits on the writer: do not wait for a full batch
	closed   bool // no more writes are admitted
	stopped  bool // the writer has exited
	changed  chan struct{}

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

// pendingWrite is the newest write to one key that is not yet on disk.
type pendingWrite struct {
	record []byte // envelope bytes; nil for a delete
	seq    uint64
	queued bool // still in the FIFO; false once the writer has taken it
}

// write is one pending write as the writer applies it.
type write struct {
	key    string
	record []byte
	seq    uint64
}

// batch is a run of writes taken from the FIFO, ending at FIFO position
// end, and the touches taken with it.
type batch struct {
	writes  []write
	end     uint64
	touches []string
}

// batchFailure remembers the FIFO positions (from, to] of the last batch
// that did not commit, so that Flush can report it.
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

// setOutcome says what became of a Set.
type setOutcome int

const (
	setQueued      setOutcome = iota
	setInvalidated            // queue full: queued as a delete instead
	setDropped                // queue full even for deletes: nothing queued
	setClosed
)

// set queues record for key. When the queue is full of values the key is
// queued as a delete instead, so that an older copy on disk is not served
// in place of the write that was dropped.
func (q *writeQueue) set(key string, record []byte) setOutcome {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return setClosed
	case q.coalesce(key, record):
		return setQueued
	case len(q.fifo) < q.valueLimit:
		q.push(key, record)
		return setQueued
	case len(q.fifo) < q.keyLimit:
		q.push(key, nil)
		return setInvalidated
	default:
		return setDropped
	}
}

// add queues record for key only if the overlay has no live value for it
// at now and, when it has no pending write at all, no batch has committed
// since the caller read generation gen from the file. It reports whether
// the key was found present (a live pending value), and whether the
// caller's read of the file is stale and must be redone.
func (q *writeQueue) add(key string, record []byte, gen uint64, now time.Time) (present, stale bool, outcome setOutcome) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false, false, setClosed
	}
	if p, ok := q.pending[key]; ok {
		if live(p.record, now) {
			return true, false, setQueued
		}
	} else if q.done != gen {
		return false, true, setQueued
	}
	switch {
	case q.coalesce(key, record):
		return false, false, setQueued
	case len(q.fifo) < q.valueLimit:
		q.push(key, record)
		return false, false, setQueued
	default:
		return false, false, setDropped // the key is absent; nothing is lost
	}
}

// lookupForAdd returns the key's pending write, if any, and the commit
// generation to pass to add.
func (q *writeQueue) lookupForAdd(key string) (record []byte, pending bool, gen uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p, ok := q.pending[key]
	return p.record, ok, q.done
}

// del queues a delete of key, waiting for room when the queue is full:
// an invalidation is never dropped. It fails only when ctx ends first or
// the queue is closed.
func (q *writeQueue) del(ctx context.Context, key string) error {
	q.mu.Lock()
	for {
		switch {
		case q.closed:
			q.mu.Unlock()
			return errClosed
		case q.coalesce(key, nil):
			q.mu.Unlock()
			return nil
		case len(q.fifo) < q.keyLimit:
			q.push(key, nil)
			q.mu.Unlock()
			return nil
		}
		q.hurry()
		changed := q.changed
		q.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
		q.mu.Lock()
	}
}

// coalesce replaces the waiting write to key, if there is one. Callers
// hold q.mu.
func (q *writeQueue) coalesce(key string, record []byte) bool {
	p, ok := q.pending[key]
	if !ok || !p.queued {
		return false
	}
	q.seq++
	p.record, p.seq = record, q.seq
	q.pending[key] = p
	return true
}

// push gives key a new FIFO slot. Callers hold q.mu.
func (q *writeQueue) push(key string, record []byte) {
	q.seq++
	q.pending[key] = pendingWrite{record: record, seq: q.seq, queued: true}
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
		writes[i] = write{key: key, record: p.record, seq: p.seq}
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

// finish records the outcome of committing b. On success, or on failure
// when requeue is false (the store is closing), the writes leave the
// overlay unless a newer write superseded them. On failure with requeue,
// every write not superseded goes back into the FIFO as a delete: a value
// that could not be stored must not leave an older copy visible, and a
// delete must not be lost.
func (q *writeQueue) finish(b batch, err error, requeue bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, w := range b.writes {
		p, ok := q.pending[w.key]
		if !ok || p.seq != w.seq {
			continue
		}
		if err != nil && requeue {
			p.record, p.queued = nil, true
			q.pending[w.key] = p
			q.fifo = append(q.fifo, w.key)
			q.enqueued++
			continue
		}
		delete(q.pending, w.key)
	}
	q.pendingN.Store(int64(len(q.pending)))
	q.done = b.end
	if err != nil {
		q.failure = batchFailure{from: b.end - uint64(len(b.writes)), to: b.end, err: err}
	}
	q.broadcast()
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
	if f := q.failure; f.err != nil && f.to > start && f.from < target {
		return f.err
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
