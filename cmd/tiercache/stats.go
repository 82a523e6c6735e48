package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newStatsCmd(g *globals) *cobra.Command {
	var addr string
	var timeout time.Duration
	var compactJSON bool
	cmd := &cobra.Command{
		Use:   "stats [--addr HOST:PORT | -c FILE]",
		Short: "Print a running service's stats (twemproxy-shaped JSON)",
		Long: `stats fetches the stats of a running service from its stats address
(stats.listen in its configuration, or --addr) and prints them: one JSON
object shaped like twemproxy's stats port output, with one object per tier
(pool) and per memcached node (server). docs/operations.md explains each
field.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addr == "" {
				f, err := g.loadConfig()
				if err != nil {
					return usageError("give --addr HOST:PORT, or -c FILE with stats.listen")
				}
				if addr = f.Stats.Listen; addr == "" {
					return usageError("%s has no stats.listen: give --addr HOST:PORT", g.configPath)
				}
			}
			url := addr
			if !strings.Contains(url, "://") {
				url = "http://" + addr + "/stats"
			}
			client := &http.Client{Timeout: timeout}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("stats from %s: %w", addr, err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
			if err != nil {
				return fmt.Errorf("stats from %s: %w", addr, err)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("stats from %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
			}
			if !json.Valid(body) {
				return fmt.Errorf("stats from %s: not JSON", url)
			}
			var out bytes.Buffer
			if compactJSON {
				err = json.Compact(&out, body)
			} else {
				err = json.Indent(&out, body, "", "  ")
			}
			if err != nil {
				return err
			}
			out.WriteByte('\n')
			_, err = g.io.out.Write(out.Bytes())
			return err
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "the service's stats address, HOST:PORT (default: stats.listen of -c)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	cmd.Flags().BoolVar(&compactJSON, "compact", false, "print the JSON on one line")
	return cmd
}
