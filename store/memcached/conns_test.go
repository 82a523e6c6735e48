package memcached

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"golang.org/x/sync/errgroup"

	"github.com/tiercache/tiercache/tier"
)

// TestRetryAfterRestart fills the pool with connections to a memcached,
// restarts it on the same port, and checks that the connections left stale
// are retried rather than reported: a Get is a plain miss on the new, empty
// server, and Adds, one alone and then many at once, all succeed.
func TestRetryAfterRestart(t *testing.T) {
	t.Parallel()
	const n = 16
	ctx := context.Background()
	tr, mc := newTestTier(t, WithTimeout(faultBound))
	e := tier.Entry{Value: []byte("v")}

	// With the server frozen, n concurrent Sets find no idle connection
	// and each dials its own (the kernel still accepts them); once the
	// server answers, all n go back to the pool.
	mc.Stop()
	var sets errgroup.Group
	for i := range n {
		sets.Go(func() error { return tr.Set(ctx, "set-"+strconv.Itoa(i), e) })
	}
	for deadline := time.Now().Add(faultBound); openConns(tr) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			mc.Cont()
			sets.Wait()
			t.Fatalf("%d connections open after %v, want %d", openConns(tr), faultBound, n)
		}
	}
	mc.Cont()
	if err := sets.Wait(); err != nil {
		t.Fatal(err)
	}

	mc.Restart()
	if _, err := tr.Get(ctx, "set-0"); !errors.Is(err, tier.ErrMiss) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get after restart: %v, want ErrMiss", err)
	}
	if err := tr.Add(ctx, "set-0", e); err != nil {
		t.Fatalf("Add after restart: %v", err)
	}
	var adds errgroup.Group
	for i := range n {
		adds.Go(func() error { return tr.Add(ctx, "add-"+strconv.Itoa(i), e) })
	}
	if err := adds.Wait(); err != nil {
		t.Fatalf("concurrent Adds after restart: %v", err)
	}
	c := tr.Counters()
	if c["retries"] == 0 || c["errors"] != 0 {
		t.Fatalf("retries = %d, errors = %d; want some retries and no errors", c["retries"], c["errors"])
	}
}

func openConns(tr *Tier) int {
	tr.conns.mu.Lock()
	defer tr.conns.mu.Unlock()
	return len(tr.conns.open)
}

func TestStaleConn(t *testing.T) {
	t.Parallel()
	netErr := func(op string, errno error) error {
		return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, errno)}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"EOF", io.EOF, true},
		{"wrapped EOF", fmt.Errorf("read reply: %w", io.EOF), true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"connection reset", netErr("read", syscall.ECONNRESET), true},
		{"broken pipe", netErr("write", syscall.EPIPE), true},
		{"timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, false},
		{"connection refused", netErr("dial", syscall.ECONNREFUSED), false},
		{"nil", nil, false},
		{"server error", memcache.ErrServerError, false},
		{"other", errors.New("other"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := staleConn(tt.err); got != tt.want {
				t.Errorf("staleConn(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
