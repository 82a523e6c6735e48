package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tiercache/tiercache/store/boltdb"
)

// busy turns a failure to get the durable file's lock into the exit code
// scripts can wait and retry on, for a command that can only wait for the
// service to stop.
func busy(err error) error { return busyOr(err, "") }

// busyOr is busy for a command that has another way round the lock: hint
// names it, with the command's own flag.
func busyOr(err error, hint string) error {
	if !errors.Is(err, boltdb.ErrLocked) {
		return err
	}
	msg := "bbolt lets no reader open a file beside its writer. Stop the service first"
	if hint != "" {
		msg = "bbolt lets no reader open a file beside its writer. Stop the service, or " + hint
	}
	return &exitError{code: exitBusy, err: fmt.Errorf("%w\n%s", err, msg)}
}

// copyHint is busyOr's hint for the commands that have --copy.
const copyHint = "pass --copy to work on a copy of the file"

// durablePath is FILE when given, or the durable.path of -c.
func (g *globals) durablePath(args []string) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	f, err := g.loadConfig()
	if err != nil {
		return "", usageError("name the durable FILE, or give -c with a durable section")
	}
	if f.Durable == nil {
		return "", usageError("%s has no durable section: name the FILE", g.configPath)
	}
	return f.Durable.Path, nil
}

// mustExist refuses a missing file up front: bbolt would create it.
func mustExist(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	return nil
}

// copyAttempts bounds how often snapshot copies a file that changed under
// it into something that does not open.
const copyAttempts = 3

// snapshot copies path into a temporary directory without taking bbolt's
// lock, so that a running service is never held up, and returns the copy
// and a function that removes it. The service may commit while the copy
// is read, which can tear it: the copy is opened read-only and checked,
// and taken again up to copyAttempts times when it is corrupt.
func snapshot(ctx context.Context, path string, open func(string) (*boltdb.Store, error)) (*boltdb.Store, func(), error) {
	dir, err := os.MkdirTemp("", "tiercache-copy-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	copyPath := filepath.Join(dir, filepath.Base(path))
	var lastErr error
	for attempt := 0; attempt < copyAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			cleanup()
			return nil, nil, err
		}
		if err := copyFile(copyPath, path); err != nil {
			cleanup()
			return nil, nil, err
		}
		s, err := open(copyPath)
		if err == nil {
			return s, cleanup, nil
		}
		lastErr = err
		if !errors.Is(err, boltdb.ErrCorrupt) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cleanup()
	return nil, nil, fmt.Errorf("copy of %s: %w", path, lastErr)
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// openReadOnly opens a durable file for reading, waiting at most
// lockTimeout for a writer to let go, or a copy of it with copyFirst.
func openReadOnly(ctx context.Context, path string, lockTimeout time.Duration, copyFirst bool) (*boltdb.Store, func(), error) {
	if err := mustExist(path); err != nil {
		return nil, nil, err
	}
	open := func(p string) (*boltdb.Store, error) {
		return boltdb.Open(p, boltdb.WithReadOnly(), boltdb.WithLockTimeout(lockTimeout), boltdb.WithGCInterval(0))
	}
	if copyFirst {
		return snapshot(ctx, path, open)
	}
	s, err := open(path)
	if err != nil {
		return nil, nil, busyOr(err, copyHint)
	}
	return s, func() {}, nil
}
