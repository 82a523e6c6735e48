package boltdb

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tiercache/tiercache/internal/clocktest"
	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
)

func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
}

// held makes the writer hold writes until Flush or Close, so that tests
// can look at the overlay before anything reaches the file.
func held() Option {
	return func(o *options) error {
		o.flushInterval = time.Hour
		o.batchSize = 1 << 20
		return nil
	}
}

func tempPath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "cache.db")
}

// openAt opens a store at path with background GC off (tests run it
// explicitly) and closes it at the end of the test.
func openAt(t testing.TB, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(path, append([]Option{WithGCInterval(0)}, opts...)...)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openTest(t testing.TB, opts ...Option) *Store {
	t.Helper()
	return openAt(t, tempPath(t), opts...)
}

func mustSet(t testing.TB, s *Store, key string, e tier.Entry) {
	t.Helper()
	if err := s.Set(context.Background(), key, e); err != nil {
		t.Fatalf("Set(%.20q): %v", key, err)
	}
}

func mustFlush(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func value(v string) tier.Entry { return tier.Entry{Value: []byte(v)} }

// sameEntry compares entries the way the envelope keeps them: expiry to
// the millisecond.
func sameEntry(got, want tier.Entry) bool {
	return got.Negative == want.Negative &&
		bytes.Equal(got.Value, want.Value) &&
		got.Expires.Equal(want.Expires.Truncate(time.Millisecond))
}

// waitFor waits for the background goroutines (testenv.WaitFor); nothing
// here waits on TTLs.
var waitFor = testenv.WaitFor

// onDisk reads key straight from the file, bypassing the overlay.
func onDisk(t testing.TB, s *Store, key string) (tier.Entry, bool) {
	t.Helper()
	var (
		e  tier.Entry
		ok bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEntries).Get(diskKey(key))
		if v == nil {
			return nil
		}
		ok = true
		var err error
		e, err = s.decode([]byte(key), v)
		return err
	})
	if err != nil {
		t.Fatalf("reading %q from disk: %v", key, err)
	}
	return e, ok
}
