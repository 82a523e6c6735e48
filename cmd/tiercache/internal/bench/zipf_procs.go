package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// How long bench waits for its workers.
const (
	// workerStartTimeout bounds building a worker's chains.
	workerStartTimeout = time.Minute
	// phaseSlack is how much longer than a phase its results may take:
	// the Gets in flight at its end, under a loaded machine.
	phaseSlack = 30 * time.Second
	// workerStopTimeout is how long a worker may take to close its chains
	// (flushing its durable files) before it is killed.
	workerStopTimeout = 10 * time.Second
)

// zipfProc is a running worker process, seen from bench.
type zipfProc struct {
	index  int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	enc    *json.Encoder
	stderr *linePrefixer
	// lines are the worker's standard output, a line at a time, closed at
	// its end; once quit is closed, lines are read and dropped.
	lines chan []byte
	quit  chan struct{}
	// exited is closed once the worker has exited, and err set.
	exited   chan struct{}
	err      error
	quitOnce sync.Once
}

// startWorker runs this program again as worker index. Cancelling ctx
// stops it (SIGTERM to its process group where there are process groups),
// and kills it if it has not exited workerStopTimeout later.
func startWorker(ctx context.Context, env Env, index int, logMu *sync.Mutex) (*zipfProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program to run its workers: %w", err)
	}
	args := []string{WorkerCommand, "-c", env.ConfigPath}
	if env.Verbose {
		args = append(args, "-v")
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), WorkerEnv+"=1")
	cmd.WaitDelay = workerStopTimeout
	setWorkerProc(cmd)
	p := &zipfProc{
		index: index, cmd: cmd,
		stderr: &linePrefixer{mu: logMu, w: env.Err, prefix: fmt.Sprintf("worker %d: ", index)},
		lines:  make(chan []byte), quit: make(chan struct{}), exited: make(chan struct{}),
	}
	cmd.Stderr = p.stderr
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	p.enc = json.NewEncoder(p.stdin)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting worker %d: %w", index, err)
	}
	go p.read(stdout)
	return p, nil
}

// read hands the worker's output lines to receive until it ends, then
// waits for the worker to exit.
func (p *zipfProc) read(stdout io.Reader) {
	defer close(p.exited)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		select {
		case p.lines <- bytes.Clone(sc.Bytes()):
		case <-p.quit:
		}
	}
	close(p.lines)
	_, _ = io.Copy(io.Discard, stdout) // a line too long: the worker must not block on a full pipe
	p.err = p.cmd.Wait()
	p.stderr.flush()
}

func (p *zipfProc) send(v any) error {
	if err := p.enc.Encode(v); err != nil {
		return fmt.Errorf("worker %d: %w", p.index, err)
	}
	return nil
}

// receive returns the worker's next line.
func (p *zipfProc) receive(ctx context.Context, timeout time.Duration) ([]byte, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line, ok := <-p.lines:
		if ok {
			return line, nil
		}
		<-p.exited
		if p.err == nil {
			p.err = errors.New("exited")
		}
		return nil, fmt.Errorf("worker %d stopped before it answered: %w (its standard error is above)", p.index, p.err)
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, fmt.Errorf("worker %d did not answer within %v", p.index, timeout)
	}
}

// stopWorkers ends the workers: their standard input is closed, which
// ends a worker waiting for a phase, and with cancel a worker in the
// middle of one. It returns once every worker has exited, with the first
// failure. Calling it again does nothing more.
func stopWorkers(procs []*zipfProc, cancel context.CancelFunc, graceful bool) error {
	for _, p := range procs {
		p.quitOnce.Do(func() {
			close(p.quit)
			_ = p.stdin.Close()
		})
	}
	if graceful {
		t := time.NewTimer(workerStopTimeout)
		defer t.Stop()
	wait:
		for _, p := range procs {
			select {
			case <-p.exited:
			case <-t.C:
				break wait
			}
		}
	}
	cancel()
	var errs []error
	for _, p := range procs {
		<-p.exited
		if p.err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", p.index, p.err))
		}
	}
	return errors.Join(errs...)
}

// linePrefixer copies a worker's log to bench's standard error a whole
// line at a time, each line prefixed with the worker's name, under a
// mutex shared by all workers so that their lines do not interleave. Its
// Write is called by one goroutine at a time (exec's copy, then flush).
type linePrefixer struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (l *linePrefixer) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
		l.emit(l.buf[:i+1])
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
	}
	return len(b), nil
}

// flush writes a last line that has no newline.
func (l *linePrefixer) flush() {
	if len(l.buf) > 0 {
		l.emit(append(l.buf, '\n'))
		l.buf = nil
	}
}

func (l *linePrefixer) emit(lines []byte) {
	var out []byte
	for line := range bytes.Lines(lines) {
		out = append(append(out, l.prefix...), line...)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(out)
}
