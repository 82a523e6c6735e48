package main

import (
	"github.com/spf13/cobra"

	"github.com/tiercache/tiercache/internal/demo"
)

func newDemoCmd(g *globals) *cobra.Command {
	var rows int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Tell tiercache's story against real servers",
		Long: `demo fills a table in MySQL/MariaDB, builds a chain memcached → bbolt → SQL
in front of it, and shows a cold Get, hot Gets, a stampede of 1,000 callers
costing one SELECT, a memcached restart costing none, and a warmup, with the
SELECTs counted at the server.

It needs TIERCACHE_MYSQL_DSN (an account that may create a database; with -c,
the file's source DSN is used instead) and either the memcached binary, which
it runs on a private port, or TIERCACHE_MEMCACHED and
TIERCACHE_MEMCACHED_RESTART. scripts/demo.sh sets all of this up.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := demo.Options{Rows: rows}
			if g.configPath != "" {
				f, err := g.loadConfig()
				if err != nil {
					return err
				}
				if opts.DSN, err = f.SourceDSN(); err != nil {
					return err
				}
			}
			return demo.Run(cmd.Context(), g.io.out, opts)
		},
	}
	cmd.Flags().IntVar(&rows, "rows", 10000, "rows in the demo table")
	return cmd
}
