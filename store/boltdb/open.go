package boltdb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// openFile opens path as configured and checks it. It returns the database,
// where a corrupt file was moved ("" if it was not), and the stored totals.
func openFile(path string, o *options) (*bolt.DB, string, totals, error) {
	db, t, err := openChecked(path, o)
	if err == nil || !errors.Is(err, ErrCorrupt) || !o.quarantine || o.readOnly {
		return db, "", t, err
	}
	aside, qerr := quarantine(path, o.clock.Now())
	if qerr != nil {
		return nil, "", totals{}, errors.Join(err, qerr)
	}
	db, t, err = openChecked(path, o)
	if err != nil {
		return nil, "", totals{}, fmt.Errorf("boltdb: open %s after moving the corrupt file to %s: %w", path, aside, err)
	}
	return db, aside, t, nil
}

// openChecked opens the file and runs checkFile on it.
//
// bbolt trusts the file: garbage in it can make bbolt panic, and a
// truncated file makes it touch mapped memory past the end of the file,
// which raises SIGBUS. Both happen here, in this goroutine, with
// SetPanicOnFault on, and are turned into ErrCorrupt. When bbolt.Open
// itself panics, the file it opened (caught by the OpenFile hook) is
// unlocked and closed; bbolt's memory map of it cannot be reached and
// stays mapped, a leak of address space paid once per corrupt file.
func openChecked(path string, o *options) (db *bolt.DB, t totals, err error) {
	var file *os.File
	bo := &bolt.Options{
		Timeout:      lockWait(o.lockTimeout),
		ReadOnly:     o.readOnly,
		NoSync:       o.noSync,
		FreelistType: bolt.FreelistMapType,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			} else if file != nil {
				releaseLock(file)
				_ = file.Close()
			}
			db, err = nil, corruptError(path, fmt.Errorf("panic: %v", r))
		}
	}()
	db, err = bolt.Open(path, 0o600, bo)
	if err != nil {
		return nil, totals{}, classifyOpenError(path, o.lockTimeout, err)
	}
	if t, err = checkFile(db, o.readOnly); err != nil {
		_ = db.Close()
		if errors.Is(err, ErrCorrupt) {
			return nil, totals{}, corruptError(path, err)
		}
		return nil, totals{}, fmt.Errorf("boltdb: open %s: %w", path, err)
	}
	return db, t, nil
}

// lockWait converts WithLockTimeout to bbolt's Timeout, where zero means
// wait forever: a nanosecond makes bbolt try the lock once.
func lockWait(d time.Duration) time.Duration {
	if d == 0 {
		return time.Nanosecond
	}
	return d
}

// classifyOpenError sorts what bbolt.Open returned: the lock timeout, an
// error from the operating system (missing file, permissions, mmap
// failing), or, for anything else, a complaint about the file's content.
func classifyOpenError(path string, timeout time.Duration, err error) error {
	var (
		pathErr *fs.PathError
		errno   syscall.Errno
	)
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("boltdb: open %s: %w (gave up after %s)", path, ErrLocked, timeout)
	case errors.As(err, &pathErr), errors.As(err, &errno):
		return fmt.Errorf("boltdb: open %s: %w", path, err)
	default:
		return corruptError(path, err)
	}
}

// corruptError names path in err and makes sure it wraps ErrCorrupt.
func corruptError(path string, err error) error {
	if errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("boltdb: open %s: %w", path, err)
	}
	return fmt.Errorf("boltdb: open %s: %w: %w", path, ErrCorrupt, err)
}

// checkFile looks for damage bbolt.Open does not: a file shorter than its
// meta page claims (truncated), and bucket pages that cannot be read. It
// touches the root and the first and last leaf of every bucket, not every
// page: a full tx.Check reads the whole file and would make Open as slow
// as the file is large. Damage deeper in the file shows up later as
// ErrCorrupt from the read that meets it. checkFile then creates the
// buckets of a new file and returns the stored totals.
func checkFile(db *bolt.DB, readOnly bool) (totals, error) {
	info, err := os.Stat(db.Path())
	if err != nil {
		return totals{}, err
	}
	var t totals
	err = db.View(func(tx *bolt.Tx) error {
		if size := tx.Size(); size > info.Size() {
			return fmt.Errorf("file is %d bytes, its meta page says %d: truncated", info.Size(), size)
		}
		for _, name := range [][]byte{bucketEntries, bucketWritten, bucketOrder, bucketMeta, bucketUsed} {
			if b := tx.Bucket(name); b != nil {
				c := b.Cursor()
				c.First()
				c.Last()
			}
		}
		t = readTotals(tx)
		return nil
	})
	if err != nil {
		return t, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if readOnly {
		return t, nil
	}
	if err := db.Update(createLayout); err != nil {
		return t, err
	}
	return t, upgradeFile(db)
}

// isLegacy reports whether db, opened read-only, is a version 1 file
// (bare envelopes, no checksums), which only a read-write Open upgrades.
func isLegacy(db *bolt.DB) (bool, error) {
	var v uint64
	err := db.View(func(tx *bolt.Tx) (err error) {
		v, err = formatOf(tx)
		return err
	})
	return v == layoutVersionLegacy, err
}

// quarantine renames a corrupt file to "<path>.corrupt-<unix seconds>",
// adding a counter when that name is taken, and returns the new name.
func quarantine(path string, now time.Time) (string, error) {
	base := fmt.Sprintf("%s.corrupt-%d", path, now.Unix())
	aside := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, fs.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("boltdb: quarantine %s: %w", path, err)
	}
	return aside, nil
}
