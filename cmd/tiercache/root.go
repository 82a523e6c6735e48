package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/bench"
	"github.com/tiercache/tiercache/config"
	"github.com/tiercache/tiercache/metrics"
)

// Exit codes scripts can rely on.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitNotFound = 3 // get: at least one key does not exist
	exitBusy     = 4 // the durable file is held by another process
)

// stdio is where a command reads and writes; tests hand in buffers.
type stdio struct {
	in       io.Reader
	out, err io.Writer
	// terminal is true when out is a terminal: progress bars are drawn
	// only then.
	terminal bool
}

// exitError carries an exit code other than 1 up to run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// globals are the flags every command takes.
type globals struct {
	configPath string
	verbose    bool
	io         stdio
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, io stdio) int {
	g := &globals{io: io}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(io.in)
	root.SetOut(io.out)
	root.SetErr(io.err)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ee *exitError
	var ue *bench.UsageError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case errors.As(err, &ue):
		code = exitUsage
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "unknown flag"),
		strings.HasPrefix(err.Error(), "unknown shorthand flag"):
		code = exitUsage
	}
	if ee != nil && ee.err == nil {
		return code // the command has said all there is to say
	}
	fmt.Fprintf(io.err, "tiercache: %v\n", err)
	if code == exitUsage {
		fmt.Fprintf(io.err, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "tiercache",
		Short: "Operate a tiercache chain: memcached → bbolt → SQL",
		Long: `tiercache is the operator's tool for a tiercache chain — memcached in
front, a local bbolt file as the durable tier, SQL as the source of truth —
described by a YAML file (see docs/operations.md):

  tiercache get -c tiercache.yml 42 43        which tier answered, and the value
  tiercache bench -c tiercache.yml hit --baseline
  tiercache ring --servers 10.0.0.1:11211:1,10.0.0.2:11211:1 < keys.txt
  tiercache inspect /var/lib/app/cache.db
  tiercache stats --addr 127.0.0.1:22223

Exit codes: 0 success, 1 error, 2 usage error, 3 a key was not found (get),
4 the durable file is held by another process (inspect, gc, compact, warmup).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       metrics.Version(),
	}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "", "the chain's configuration `FILE` (YAML)")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log operator events (info level) to standard error")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	root.AddCommand(
		newDemoCmd(g), newGetCmd(g), newBenchCmd(g), newRingCmd(g), newWarmupCmd(g),
		newInspectCmd(g), newGCCmd(g), newCompactCmd(g), newStatsCmd(g), newBenchWorkerCmd(g),
		newServeCmd(g),
	)
	return root
}

// args wraps a cobra argument check so that its failure is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		return nil
	}
}

// loadConfig reads -c, which the command requires.
func (g *globals) loadConfig() (*config.File, error) {
	if g.configPath == "" {
		return nil, usageError("this command needs the chain's configuration: -c FILE")
	}
	return config.Load(g.configPath)
}

// logger is the file's logger, raised to info by -v.
func (g *globals) logger(f *config.File) *slog.Logger {
	l := config.Log{}
	if f != nil {
		l = f.Log
	}
	if g.verbose {
		if lvl, _ := config.ParseLevel(l.Level); lvl > slog.LevelInfo {
			l.Level = "info"
		}
	}
	return l.Logger(g.io.err)
}

// loadChain builds the chain of -c for a tool: no stats server (the
// service owns the port), the file's logger. busyHint is what the command
// offers when a service holds the durable file (see busyOr).
func (g *globals) loadChain(busyHint string, opts ...tiercache.Option) (*tiercache.Chain, error) {
	f, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	chain, err := tiercache.Build(f, append(g.toolOptions(f), opts...)...)
	if err != nil {
		return nil, busyOr(err, busyHint)
	}
	return chain, nil
}

// toolOptions are the options every chain a tool builds from f takes: no
// stats server (the service owns the port), the file's logger.
func (g *globals) toolOptions(f *config.File) []tiercache.Option {
	return []tiercache.Option{tiercache.WithoutStatsServer(), tiercache.WithLogger(g.logger(f))}
}
