package testenv

import "syscall"

// sysProcAttr makes the kernel kill a server when the test binary that
// started it dies, even by SIGKILL or a test timeout, so that no server
// outlives its tests.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
