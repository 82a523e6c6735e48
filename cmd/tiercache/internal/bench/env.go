// Package bench is the benchmark harness of the tiercache command: the
// scenarios of "tiercache bench" (hit, durable, cold, stampede, multi and
// the multi-process zipf) and the worker processes zipf starts. The
// command line wires its flags into Flags and ZipfFlags and hands in an
// Env; everything else happens here.
package bench

import (
	"io"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/config"
	"github.com/tiercache/tiercache/store/boltdb"
)

// Env is what a benchmark takes from the program that runs it.
type Env struct {
	In       io.Reader
	Out, Err io.Writer
	// Command is the command line, quoted in the report.
	Command string
	// ConfigPath and Verbose are -c and -v, passed on to zipf's workers.
	ConfigPath string
	Verbose    bool
	// LoadConfig reads the chain's configuration file.
	LoadConfig func() (*config.File, error)
	// ChainOptions are the options every chain built from f takes (a
	// logger, no stats server).
	ChainOptions func(f *config.File) []tiercache.Option
	// Progress shows how far a long step is, polling current against
	// total, until the function it returns is called; nil shows nothing.
	Progress func(total int64, description string, current func() int64) (finish func())
}

// WorkerCommand is the hidden command of the program that runs a zipf
// worker (RunWorker): zipf starts the program itself with it.
const WorkerCommand = "bench-worker"

// progress starts e.Progress, if any, and returns the function that ends it.
func (e Env) progress(total int64, description string, current func() int64) func() {
	if e.Progress == nil {
		return func() {}
	}
	return e.Progress(total, description, current)
}

// scratchDurable puts a chain's durable tier in a file of its own at path,
// for a benchmark: no GC, and no waiting for a lock nobody else holds.
func scratchDurable(path string) []tiercache.Option {
	return []tiercache.Option{tiercache.WithDurablePath(path),
		tiercache.WithDurableOptions(boltdb.WithGCInterval(0), boltdb.WithLockTimeout(0))}
}
