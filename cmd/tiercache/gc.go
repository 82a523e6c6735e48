package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tiercache/tiercache/store/boltdb"
)

func newGCCmd(g *globals) *cobra.Command {
	var lockTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "gc [FILE]",
		Short: "Delete the expired entries of a durable file once",
		Long: `gc runs one pass of the durable tier's garbage collector: it deletes the
entries that expired more than gc_grace ago and records that are not
entries, then evicts down to max_entries / max_bytes, in small transactions.
The settings come from the durable section of -c when given.

A running service collects its own garbage (gc_interval); gc is for a file
no service holds, and gives up after --lock-timeout (exit code 4) when one
does. Deleted entries free pages for reuse; the file does not shrink: see
compact.

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
			opts := []boltdb.Option{boltdb.WithGCInterval(0), boltdb.WithLockTimeout(lockTimeout)}
			if g.configPath != "" {
				if f, err := g.loadConfig(); err == nil && f.Durable != nil {
					d := f.Durable
					opts = append(opts, boltdb.WithGCGrace(d.GCGrace.D()),
						boltdb.WithMaxEntries(d.MaxEntries), boltdb.WithMaxBytes(int64(d.MaxBytes)))
				} else if err != nil {
					return err
				}
			}
			store, err := boltdb.Open(path, opts...)
			if err != nil {
				return busy(err)
			}
			before := store.Counters()
			start := time.Now()
			deleted, gcErr := store.RunGC(cmd.Context())
			after := store.Counters()
			if err := store.Close(); gcErr == nil {
				gcErr = err
			}
			if gcErr != nil {
				return gcErr
			}
			fmt.Fprintf(g.io.out, "gc %s: deleted %d expired entries, evicted %d over the size cap, in %v; %d entries (%s) remain\n",
				path, deleted, after["evicted"]-before["evicted"], time.Since(start).Round(time.Millisecond),
				after["entries"], humanBytes(after["bytes"]))
			return nil
		},
	}
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", time.Second, "give up when another process holds the file this long")
	return cmd
}
