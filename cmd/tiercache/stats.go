package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// maxStats bounds what stats reads from a stats port.
const maxStats = 64 << 20

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
field.

HOST:PORT is read the way twemproxy's collectors read it: connect, read
until the server closes. That works with tiercache's stats port and with a
nutcracker's (-s, 22222 by default). An http:// or https:// URL is fetched
with a GET instead.`,
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
			body, err := fetchStats(cmd.Context(), addr, timeout)
			if err != nil {
				return fmt.Errorf("stats from %s: %w", addr, err)
			}
			if !json.Valid(body) {
				return fmt.Errorf("stats from %s: not JSON: %.80q", addr, body)
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

// fetchStats reads a stats port: a raw connection for HOST:PORT, which
// tiercache and nutcracker both answer by writing the JSON and closing, or
// an HTTP GET for a URL.
func fetchStats(ctx context.Context, addr string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if strings.Contains(addr, "://") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxStats))
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
		}
		return body, nil
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	body, err := io.ReadAll(io.LimitReader(conn, maxStats))
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, fmt.Errorf("the connection closed without stats")
	}
	return body, nil
}
