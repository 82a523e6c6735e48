package boltdb

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tiercache/tiercache/tier"
)

var bg = context.Background()

func TestQueueSupersededWhileInFlight(t *testing.T) {
	t.Parallel()
	q := newWriteQueue(10, 10)
	q.set(bg, "k", []byte("v1"))
	b := q.take(10)
	q.set(bg, "k", []byte("v2")) // arrives while v1 is being committed
	q.finish(b, nil, true)
	if rec, ok := q.lookup("k"); !ok || string(rec) != "v2" {
		t.Fatalf("after v1 committed the overlay holds %q, %v; want v2 still pending", rec, ok)
	}
	b = q.take(10)
	if len(b.writes) != 1 || string(b.writes[0].record) != "v2" {
		t.Fatalf("next batch = %+v, want v2", b.writes)
	}
	q.finish(b, nil, true)
	if _, ok := q.lookup("k"); ok {
		t.Fatal("overlay still holds k after its last write committed")
	}
}

func TestQueueCoalesces(t *testing.T) {
	t.Parallel()
	q := newWriteQueue(10, 10)
	for i := range 5 {
		q.set(bg, "hot", fmt.Appendf(nil, "v%d", i))
	}
	if err := q.del(context.Background(), "hot"); err != nil {
		t.Fatal(err)
	}
	q.set(bg, "hot", []byte("last"))
	b := q.take(10)
	if len(b.writes) != 1 || string(b.writes[0].record) != "last" {
		t.Fatalf("batch = %+v, want one write of the last value", b.writes)
	}
}

func TestQueueFailedBatchRequeuedAsItWas(t *testing.T) {
	t.Parallel()
	q := newWriteQueue(10, 10)
	q.set(bg, "a", []byte("va"))
	q.set(bg, "b", []byte("vb"))
	b := q.take(10)
	q.set(bg, "b", []byte("newer"))
	q.finish(b, errors.New("disk full"), true)
	if rec, ok := q.lookup("a"); !ok || string(rec) != "va" {
		t.Errorf("a after a failed batch = %q, %v; want its value, queued again", rec, ok)
	}
	if rec, ok := q.lookup("b"); !ok || string(rec) != "newer" {
		t.Errorf("b after a failed batch = %q, %v; want the newer write untouched", rec, ok)
	}
	if queued, _ := q.depth(); queued != 2 {
		t.Errorf("queue depth = %d, want 2 (a requeued, b's newer write)", queued)
	}
}

func TestQueueFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const size = 4
	s := openTest(t, held(), WithQueueSize(size))
	mustSet(t, s, "old", value("stale if served"))
	mustFlush(t, s)

	// Stall the writer inside a commit: it waits for bbolt's writer lock,
	// held here, with one write taken and the queue empty behind it.
	tx, err := s.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			_ = tx.Rollback()
		}
	}
	defer release()
	mustSet(t, s, "stall", value("v"))
	flushed := make(chan error, 1)
	go func() { flushed <- s.Flush(ctx) }()
	waitFor(t, "the writer to take the first write", func() bool {
		queued, pending := s.q.depth()
		return queued == 0 && pending == 1
	})

	for i := range size {
		mustSet(t, s, fmt.Sprint("k", i), value("v"))
	}
	mustSet(t, s, "k0", value("coalesced")) // k0 is queued: no new slot
	if n := s.Counters()["dropped"]; n != 0 {
		t.Fatalf("dropped = %d after filling the queue, want 0", n)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := s.Set(short, "extra", value("not queued")); !errors.Is(err, ErrQueueFull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Set on a full queue with an expiring context = %v, want ErrQueueFull and DeadlineExceeded", err)
	}
	if err := s.Set(short, "old", value("not queued either")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Set on a full queue = %v, want ErrQueueFull", err)
	}
	if err := s.Add(short, "absent", value("not queued")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Add on a full queue = %v, want ErrQueueFull", err)
	}
	if n := s.Counters()["dropped"]; n != 3 {
		t.Fatalf("dropped = %d, want 3", n)
	}
	if _, err := s.Get(ctx, "extra"); !errors.Is(err, tier.ErrMiss) {
		t.Errorf("Get(key whose Set failed) = %v, want ErrMiss", err)
	}
	if got, err := s.Get(ctx, "old"); !errors.Is(err, tier.ErrMiss) {
		t.Errorf("Get(key whose Set failed) = %q, %v; want ErrMiss, not the older copy", got.Value, err)
	}
	if got, _ := s.Get(ctx, "k0"); string(got.Value) != "coalesced" {
		t.Errorf("Get(k0) = %q, want coalesced", got.Value)
	}
	setWaiting := make(chan error, 1)
	go func() { setWaiting <- s.Set(ctx, "patient", value("waited")) }()

	// Deletes fill the reserve, then wait.
	for i := 0; ; i++ {
		if queued, _ := s.q.depth(); queued == 2*size {
			break
		}
		if err := s.Delete(ctx, fmt.Sprint("d", i)); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel = context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := s.Delete(short, "k1"); err != nil {
		t.Fatalf("Delete of a queued key on a full queue = %v, want nil (coalesced)", err)
	}
	if err := s.Delete(short, "late"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Delete on a full queue with an expiring context = %v, want DeadlineExceeded", err)
	}
	if n := s.Counters()["dropped"]; n != 3 {
		t.Fatalf("dropped = %d after Deletes, want still 3: deletes are never dropped", n)
	}

	waiting := make(chan error, 1)
	go func() { waiting <- s.Delete(ctx, "fresh") }()
	go func() { waiting <- s.Delete(ctx, "stall") }()
	select {
	case err := <-waiting:
		t.Fatalf("a Delete on a full queue returned %v at once; it should wait for room", err)
	case err := <-setWaiting:
		t.Fatalf("a Set on a full queue returned %v at once; it should wait for room", err)
	case <-time.After(20 * time.Millisecond):
	}
	release() // the writer commits and makes room
	if err := <-setWaiting; err != nil {
		t.Fatalf("Set after room was made = %v", err)
	}
	for range 2 {
		if err := <-waiting; err != nil {
			t.Fatalf("Delete after room was made = %v", err)
		}
	}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	mustFlush(t, s)
	for _, k := range []string{"stall", "old", "fresh", "k1", "extra"} {
		if _, ok := onDisk(t, s, k); ok {
			t.Errorf("%s is on disk after Flush; its delete was lost", k)
		}
	}
	for k, want := range map[string]string{"k2": "v", "patient": "waited"} {
		if e, ok := onDisk(t, s, k); !ok || string(e.Value) != want {
			t.Errorf("%s on disk = %q, %v; want %s", k, e.Value, ok, want)
		}
	}
}

// TestWriteFailure breaks the file's layout under the writer: the batch
// fails, Flush says so, its write is kept and served, and once the layout
// is back the retry stores it.
func TestWriteFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t)
	mustSet(t, s, "k", value("v1"))
	mustFlush(t, s)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketOrder) }); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "k", value("v2"))
	if err := s.Flush(ctx); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Flush over a broken layout = %v, want the batch's error", err)
	}
	if s.Counters()["write_errors"] == 0 {
		t.Error("write_errors not counted")
	}
	if got, err := s.Get(ctx, "k"); err != nil || string(got.Value) != "v2" {
		t.Fatalf("Get after a failed write = %q, %v; want v2, still queued", got.Value, err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucketOrder); return err }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retried write to commit", func() bool { e, ok := onDisk(t, s, "k"); return ok && string(e.Value) == "v2" })
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush after recovery = %v", err)
	}
}
