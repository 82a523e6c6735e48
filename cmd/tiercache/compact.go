package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/tiercache/tiercache/store/boltdb"
)

// compactTxSize is how many bytes of keys and values bbolt's Compact copies
// per transaction into the new file.
const compactTxSize = 64 << 20

func newCompactCmd(g *globals) *cobra.Command {
	var lockTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "compact [FILE]",
		Short: "Rewrite a durable file to give its free space back to the disk",
		Long: `compact copies every entry of a durable file into a new file beside it,
checks the new file, and renames it over the old one. bbolt files never
shrink on their own: pages freed by deletes and the GC are reused, but the
file keeps its largest size. Run gc first to drop what has expired.

The file is held (exclusively) for the whole copy: a service must be
stopped first; compact gives up after --lock-timeout (exit code 4) when one
holds it. The copy needs as much free disk as the live data. A progress bar
is drawn on a terminal.

FILE defaults to durable.path of -c.`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			path, err := g.durablePath(a)
			if err != nil {
				return err
			}
			if err := mustExist(path); err != nil {
				return err
			}
			before, after, took, err := compact(g.io, path, lockTimeout)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.io.out, "compact %s: %s → %s (%s freed) in %v\n", path,
				humanBytes(before), humanBytes(after), humanBytes(before-after), took.Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", time.Second, "give up when another process holds the file this long")
	return cmd
}

// compact rewrites path through bbolt's Compact into path+".compact", then
// renames the copy over path while still holding path's lock, so that no
// service can open the old file and write to it in between.
func compact(io stdio, path string, lockTimeout time.Duration) (before, after int64, took time.Duration, err error) {
	start := time.Now()
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return 0, 0, 0, busy(fmt.Errorf("compact %s: %w", path, boltdb.ErrLocked))
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("compact %s: %w", path, err)
	}
	defer src.Close()
	info, err := os.Stat(path)
	if err != nil {
		return 0, 0, 0, err
	}
	before = info.Size()
	var live int64
	_ = src.View(func(tx *bolt.Tx) error {
		st := src.Stats()
		live = tx.Size() - int64(st.FreePageN+st.PendingPageN)*int64(src.Info().PageSize)
		return nil
	})

	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".compact")
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{NoSync: true, Timeout: lockTimeout})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("compact %s: create %s: %w", path, tmp, err)
	}
	keep := false
	defer func() {
		if !keep {
			_ = os.Remove(tmp)
		}
	}()
	bar := startProgress(io, live, "compacting", true, func() int64 {
		if fi, err := os.Stat(tmp); err == nil {
			return fi.Size()
		}
		return 0
	})
	cerr := bolt.Compact(dst, src, compactTxSize)
	bar.finish()
	if cerr == nil {
		cerr = dst.Sync()
	}
	if err := dst.Close(); cerr == nil {
		cerr = err
	}
	if cerr != nil {
		return 0, 0, 0, fmt.Errorf("compact %s: %w", path, cerr)
	}
	// The copy must open as a tiercache file before it replaces anything.
	check, err := boltdb.Open(tmp, boltdb.WithReadOnly(), boltdb.WithGCInterval(0))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("compact %s: the new file does not check out, the old one is left alone: %w", path, err)
	}
	if err := check.Close(); err != nil {
		return 0, 0, 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, 0, 0, fmt.Errorf("compact %s: %w", path, err)
	}
	keep = true
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // make the rename durable
		d.Close()
	}
	if fi, err := os.Stat(path); err == nil {
		after = fi.Size()
	}
	return before, after, time.Since(start), nil
}
