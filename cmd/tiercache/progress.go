package main

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress draws a bar on a terminal and nothing elsewhere, fed by polling
// a function that says how far the work is, so the work itself needs no
// callback.
type progress struct {
	bar  *progressbar.ProgressBar
	stop context.CancelFunc
	done sync.WaitGroup
}

// startProgress polls current every 100ms and draws it against total (0:
// unknown, a spinner). It draws only when io is a terminal.
func startProgress(io stdio, total int64, description string, bytes bool, current func() int64) *progress {
	p := &progress{}
	if !io.terminal {
		return p
	}
	p.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(io.err),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowBytes(bytes),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionOnCompletion(func() { _, _ = io.err.Write([]byte("\n")) }),
	)
	ctx, stop := context.WithCancel(context.Background())
	p.stop = stop
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n := current()
				if total > 0 && n > total {
					n = total
				}
				_ = p.bar.Set64(n)
			}
		}
	}()
	return p
}

// finish stops polling and clears the bar.
func (p *progress) finish() {
	if p.bar == nil {
		return
	}
	p.stop()
	p.done.Wait()
	_ = p.bar.Finish()
}

var _ io.Writer = (*progressbar.ProgressBar)(nil)
