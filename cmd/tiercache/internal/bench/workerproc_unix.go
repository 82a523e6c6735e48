//go:build unix

package bench

import (
	"os/exec"
	"syscall"
)

// setWorkerProc puts a worker process in a process group of its own, so
// that a Ctrl-C at the terminal reaches bench alone, which then stops its
// workers in order: cancelling the command sends SIGTERM to the group, and
// each worker closes its chains and exits.
func setWorkerProc(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
}
