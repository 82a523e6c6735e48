//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package boltdb

import (
	"os"
	"syscall"
)

// releaseLock drops bbolt's flock on f before f is closed. Closing alone
// is not enough after bbolt.Open panicked: its memory map of the file is
// out of reach and keeps the open file, and with it the lock, alive.
func releaseLock(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
