package boltdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// compactTxSize is how many bytes of keys and values bbolt's Compact copies
// per transaction into the new file.
const compactTxSize = 64 << 20

// CompactProgress is told, when a compaction starts copying, how many bytes
// of live data it will copy and how to read how many it has written so far.
// The function it returns is called when the copy ends. Tools draw a
// progress bar with it.
type CompactProgress func(total int64, written func() int64) (done func())

// Compacted is what Compact did: the file's size before and after, and how
// long it took.
type Compacted struct {
	Before, After int64
	Took          time.Duration
}

// Compact rewrites the file at path into a new file beside it, checks that
// the copy opens as a store, and renames it over path, giving the space
// freed by deletes back to the disk (a bbolt file never shrinks by
// itself). It holds path's lock from start to rename, so no Store can open
// the old file and write to it in between: a file another process holds
// fails after lockTimeout with an error wrapping ErrLocked. It needs as
// much free disk as the live data; on failure the old file is left as it
// was. progress may be nil.
func Compact(path string, lockTimeout time.Duration, progress CompactProgress) (Compacted, error) {
	start := time.Now()
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait(lockTimeout)})
	if errors.Is(err, berrors.ErrTimeout) {
		return Compacted{}, fmt.Errorf("boltdb: compact %s: %w", path, ErrLocked)
	}
	if err != nil {
		return Compacted{}, fmt.Errorf("boltdb: compact %s: %w", path, err)
	}
	defer src.Close()
	info, err := os.Stat(path)
	if err != nil {
		return Compacted{}, fmt.Errorf("boltdb: compact %s: %w", path, err)
	}
	res := Compacted{Before: info.Size()}
	var live int64
	_ = src.View(func(tx *bolt.Tx) error {
		st := src.Stats()
		live = tx.Size() - int64(st.FreePageN+st.PendingPageN)*int64(src.Info().PageSize)
		return nil
	})

	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".compact")
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{NoSync: true, Timeout: lockWait(lockTimeout)})
	if err != nil {
		return Compacted{}, fmt.Errorf("boltdb: compact %s: create %s: %w", path, tmp, err)
	}
	keep := false
	defer func() {
		if !keep {
			_ = os.Remove(tmp)
		}
	}()
	done := func() {}
	if progress != nil {
		done = progress(live, func() int64 {
			if fi, err := os.Stat(tmp); err == nil {
				return fi.Size()
			}
			return 0
		})
	}
	cerr := bolt.Compact(dst, src, compactTxSize)
	done()
	if cerr == nil {
		cerr = dst.Sync()
	}
	if err := dst.Close(); cerr == nil {
		cerr = err
	}
	if cerr != nil {
		return Compacted{}, fmt.Errorf("boltdb: compact %s: %w", path, cerr)
	}
	// The copy must open as a store before it replaces anything.
	check, err := Open(tmp, WithReadOnly(), WithGCInterval(0))
	if err != nil {
		return Compacted{}, fmt.Errorf("boltdb: compact %s: the new file does not check out, the old one is left alone: %w", path, err)
	}
	if err := check.Close(); err != nil {
		return Compacted{}, fmt.Errorf("boltdb: compact %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return Compacted{}, fmt.Errorf("boltdb: compact %s: %w", path, err)
	}
	keep = true
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // make the rename durable
		d.Close()
	}
	if fi, err := os.Stat(path); err == nil {
		res.After = fi.Size()
	}
	res.Took = time.Since(start)
	return res, nil
}
