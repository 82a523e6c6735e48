package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/tier"
)

func newWarmupCmd(g *globals) *cobra.Command {
	var copyFirst bool
	var lockTimeout time.Duration
	var rate, burst int
	cmd := &cobra.Command{
		Use:   "warmup -c FILE",
		Short: "Refill memcached from the durable file",
		Long: `warmup copies the live entries of the durable file into memcached, the way
the chain does after a memcached restart: entries are added (never
overwriting what is there), with the time they have left, expired and
negative entries skipped. Running it twice writes nothing the second time.

The durable file is opened read-only. A running service holds it: give up
after --lock-timeout (exit code 4), or pass --copy to warm up from a copy
taken without a lock. A progress bar is drawn on a terminal.

--rate limits the entries sent per second, to spare the servers' CPUs for
live traffic; --burst sends that many entries (the most recently used
first) at full speed before the rate applies.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rate < 0 || burst < 0 {
				return usageError("--rate and --burst must not be negative")
			}
			f, err := g.loadConfig()
			if err != nil {
				return err
			}
			if f.Durable == nil || f.Memcached == nil {
				return fmt.Errorf("%s: warmup needs both a memcached and a durable section", g.configPath)
			}
			opts := []tiercache.Option{tiercache.WithDurableOptions(boltdb.WithReadOnly(),
				boltdb.WithLockTimeout(lockTimeout), boltdb.WithGCInterval(0))}
			if copyFirst {
				if err := mustExist(f.Durable.Path); err != nil {
					return err
				}
				dir, err := os.MkdirTemp("", "tiercache-warmup-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				copyPath := dir + "/cache.db"
				if err := copyFile(copyPath, f.Durable.Path); err != nil {
					return err
				}
				opts = append(opts, tiercache.WithDurablePath(copyPath))
			}
			// memcached is what a warmup refills; a memory tier of this
			// command's own would only hold copies for a second.
			chain, err := g.loadChain(copyHint, append(opts, tiercache.WithoutMemory())...)
			if err != nil {
				return err
			}
			defer chain.Close()
			total := chain.Durable.Counters()["entries"]
			bar := startProgress(g.io, total, "warming up", false, func() int64 {
				return chain.Cache.Stats().Warmup.Scanned
			})
			start := time.Now()
			ws, err := chain.Cache.Warmup(cmd.Context(), tier.WithWarmupRate(rate), tier.WithWarmupBurst(burst))
			bar.finish()
			took := time.Since(start).Round(time.Millisecond)
			chain.Logger.Info("warmup finished", "scanned", ws.Scanned, "written", ws.Written,
				"skipped", ws.Skipped, "present", ws.Present, "failed", ws.Failed, "took", took)
			fmt.Fprintf(g.io.out, "warmup: scanned %d, written %d, already present %d, skipped %d (expired or negative), failed %d, in %v\n",
				ws.Scanned, ws.Written, ws.Present, ws.Skipped, ws.Failed, took)
			if err != nil {
				return err
			}
			if ws.Failed > 0 {
				return fmt.Errorf("%d entries could not be written to memcached", ws.Failed)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&copyFirst, "copy", false, "warm up from a copy of the durable file (beside a running service)")
	cmd.Flags().IntVar(&rate, "rate", 0, "entries sent per second (0: as fast as memcached takes them)")
	cmd.Flags().IntVar(&burst, "burst", 0, "entries sent at full speed before --rate applies")
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", time.Second, "give up when another process holds the durable file this long")
	return cmd
}
