// Command tiercache is the operator's tool for a tiercache chain
// (memcached → bbolt → SQL) described by a configuration file: it reads
// keys through the chain, benchmarks it, shows where keys land on the
// memcached ring, warms memcached up, inspects, garbage-collects and
// compacts the durable file, and reads a running service's stats.
//
// Run `tiercache --help` for the commands and `tiercache help CMD` for
// each. Exit codes: 0 success, 1 error, 2 usage error, 3 a key was not
// found (get), 4 the durable file is held by another process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{
		in:       os.Stdin,
		out:      os.Stdout,
		err:      os.Stderr,
		terminal: term.IsTerminal(int(os.Stdout.Fd())),
	})
	stop()
	os.Exit(code)
}
