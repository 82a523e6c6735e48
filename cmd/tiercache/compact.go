package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tiercache/tiercache/store/boltdb"
)

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
			res, err := boltdb.Compact(path, lockTimeout, func(total int64, written func() int64) func() {
				return startProgress(g.io, total, "compacting", true, written).finish
			})
			if err != nil {
				return busy(err)
			}
			fmt.Fprintf(g.io.out, "compact %s: %s → %s (%s freed) in %v\n", path,
				humanBytes(res.Before), humanBytes(res.After), humanBytes(res.Before-res.After), res.Took.Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", time.Second, "give up when another process holds the file this long")
	return cmd
}
