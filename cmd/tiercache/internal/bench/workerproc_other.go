//go:build !unix

package bench

import "os/exec"

// setWorkerProc leaves a worker in bench's process group: cancelling the
// command kills it, as exec does by default.
func setWorkerProc(*exec.Cmd) {}
