package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// errAddrInUse reports that a server could not bind its port. The caller
// picks another port or tries again.
var errAddrInUse = errors.New("address already in use")

// process is a server started by this package. Its output goes to a log
// file whose tail is quoted when the server fails.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has exited and been reaped
	waitErr error         // why it exited; valid once done is closed
}

// startProcess starts path with args, its output written over logPath.
func startProcess(name, logPath, path string, args ...string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("testenv: start %s: %w", name, err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(path, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testenv: start %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady calls ready until it succeeds, the process exits or timeout
// passes. The error quotes the end of the log; it wraps errAddrInUse when
// the log says the port was taken.
func (p *process) waitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			tail := p.logTail()
			if strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("testenv: %s exited during start: %w\n%s", p.name, errAddrInUse, tail)
			}
			return fmt.Errorf("testenv: %s exited during start (%v)\n%s", p.name, p.waitErr, tail)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("testenv: %s did not accept connections within %v: %v\n%s",
				p.name, timeout, err, p.logTail())
		}
	}
}

func (p *process) signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !p.exited() {
		return fmt.Errorf("testenv: signal %s (pid %d) %v: %w", p.name, p.pid(), sig, err)
	}
	return nil
}

// kill sends SIGKILL and waits until the process has been reaped.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// terminate sends SIGTERM and waits for the process to exit, killing it when
// it is still there after timeout.
func (p *process) terminate(timeout time.Duration) error {
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("testenv: %s (pid %d) ignored SIGTERM for %v; killed it", p.name, p.pid(), timeout)
	}
}

// logTail returns the last lines of the log, labelled with its path.
func (p *process) logTail() string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return fmt.Sprintf("--- last lines of %s:\n%s", filepath.Base(p.logPath), bytes.Join(lines, []byte("\n")))
}
