package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tiercache/tiercache"
)

func newServeCmd(g *globals) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "serve -c FILE",
		Short: "Serve the chain to memcached clients (text and meta protocol)",
		Long: `serve runs the chain of -c behind a server that speaks memcached's text
and meta protocols, so that PHP, Python or any memcached client reads
through it (see docs/serve.md):

  get article:42       the key 42 of the source, read through the chain
                       (serve.route: article)
  get session:abc      any other key: plain cache in the memcached pool,
                       flags and all, as through twemproxy

The address is serve.listen (default 127.0.0.1:22121); the line
"serving on ADDR" is printed once it listens. SIGTERM or SIGINT stops
accepting, lets connections finish the commands they sent (up to
serve.shutdown_timeout), then flushes the durable tier and exits.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := g.loadConfig()
			if err != nil {
				return err
			}
			if listen != "" {
				f.Serve.Listen = listen
			}
			s, err := tiercache.BuildServed(f, tiercache.WithLogger(g.logger(f)))
			if err != nil {
				return err
			}
			ln, err := s.Listen()
			if err != nil {
				return errors.Join(err, s.Close())
			}
			fmt.Fprintf(g.io.out, "serving on %s\n", ln.Addr())
			return errors.Join(s.Run(cmd.Context(), ln), s.Close())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "listen on `HOST:PORT` instead of serve.listen")
	return cmd
}
