package wire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// echoServer answers "echo <word>" with "VERSION <word>", in order, on
// every connection, and counts the connections it accepted. hang, when
// set, makes it read and answer nothing.
type echoServer struct {
	addr     string
	accepted atomic.Int64
	hang     atomic.Bool
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{addr: ln.Addr().String()}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if s.hang.Load() {
						continue
					}
					word, _ := strings.CutPrefix(strings.TrimSpace(line), "echo ")
					io.WriteString(c, "VERSION "+word+"\r\n")
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// echo is a request for word whose reply it checks.
func echo(word string, got *string) *Request {
	return &Request{Buf: []byte("echo " + word + "\r\n"), Read: func(r *Reader) error {
		rep, err := r.Next()
		if err != nil {
			return err
		}
		*got = rep.Msg
		return nil
	}}
}

// Many goroutines, each with requests pipelined, get their own replies
// back, over no more connections than the bound.
func TestPoolPipelines(t *testing.T) {
	t.Parallel()
	s := startEcho(t)
	p := NewPool(Config{Network: "tcp", Addr: s.addr, Conns: 2, Depth: 4, Timeout: 5 * time.Second})
	defer p.Close()
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Go(func() {
			ctx := context.Background()
			// One request at a time, then ten in flight at once.
			var one string
			if err := p.Do(ctx, echo(fmt.Sprint(g), &one)); err != nil || one != fmt.Sprint(g) {
				t.Errorf("Do: %q, %v", one, err)
			}
			got := make([]string, 10)
			calls := make([]*Call, 10)
			for i := range calls {
				calls[i] = p.Send(ctx, echo(fmt.Sprintf("%d-%d", g, i), &got[i]))
			}
			for i, c := range calls {
				if err := c.Wait(ctx); err != nil || got[i] != fmt.Sprintf("%d-%d", g, i) {
					t.Errorf("call %d: %q, %v", i, got[i], err)
				}
			}
		})
	}
	wg.Wait()
	if n := s.accepted.Load(); n > 2 {
		t.Errorf("%d connections, want at most 2", n)
	}
	if st := p.Stats(); st.Open > 2 || st.Dials != s.accepted.Load() {
		t.Errorf("stats %+v, want at most 2 open and one dial per connection", st)
	}
}

// A caller's context bounds its wait; giving up is not reported to the
// health hook, and the connection stays in step for the next caller.
func TestPoolCallerGivesUp(t *testing.T) {
	t.Parallel()
	s := startEcho(t)
	var reported atomic.Int64
	p := NewPool(Config{Network: "tcp", Addr: s.addr, Conns: 1, Depth: 1, Timeout: 5 * time.Second,
		Report: func(err error) {
			if err != nil {
				reported.Add(1)
			}
		}})
	defer p.Close()
	// Fill the only slot with a request whose reply is slow to be read.
	release := make(chan struct{})
	slow := &Request{Buf: []byte("echo slow\r\n"), Read: func(r *Reader) error {
		<-release
		_, err := r.Next()
		return err
	}}
	c := p.Send(context.Background(), slow)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var got string
	if err := p.Do(ctx, echo("queued", &got)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do while the pool is full: %v, want the caller's deadline", err)
	}
	close(release)
	if err := c.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Do(context.Background(), echo("next", &got)); err != nil || got != "next" {
		t.Fatalf("Do after: %q, %v", got, err)
	}
	if n := reported.Load(); n != 0 {
		t.Errorf("%d failures reported, want none", n)
	}
}

// A node that does not answer fails the request at the head of the
// connection with a timeout, reported once; those behind it are lost with
// ErrConnLost and not reported.
func TestPoolHungNode(t *testing.T) {
	t.Parallel()
	s := startEcho(t)
	s.hang.Store(true)
	var reported atomic.Int64
	p := NewPool(Config{Network: "tcp", Addr: s.addr, Conns: 1, Depth: 8, Timeout: 50 * time.Millisecond,
		Report: func(err error) {
			if err != nil {
				reported.Add(1)
			}
		}})
	defer p.Close()
	ctx := context.Background()
	got := make([]string, 5)
	calls := make([]*Call, 5)
	for i := range calls {
		calls[i] = p.Send(ctx, echo("x", &got[i]))
	}
	var timeouts, lost int
	for _, c := range calls {
		err := c.Wait(ctx)
		switch {
		case errors.Is(err, ErrConnLost):
			lost++
		case errors.Is(err, os.ErrDeadlineExceeded):
			timeouts++
		default:
			t.Errorf("call on a hung node: %v", err)
		}
	}
	if timeouts != 1 || lost != 4 || reported.Load() != 1 {
		t.Errorf("%d timeouts, %d lost, %d reported; want 1, 4, 1", timeouts, lost, reported.Load())
	}
}

// The Gate refuses requests, except probes; Close fails what is in flight
// and everything after.
func TestPoolGateAndClose(t *testing.T) {
	t.Parallel()
	s := startEcho(t)
	down := errors.New("down")
	var gated atomic.Bool
	p := NewPool(Config{Network: "tcp", Addr: s.addr, Conns: 1, Depth: 1, Timeout: 5 * time.Second,
		Gate: func() error {
			if gated.Load() {
				return down
			}
			return nil
		}})
	ctx := context.Background()
	var got string
	gated.Store(true)
	if err := p.Do(ctx, echo("a", &got)); !errors.Is(err, down) {
		t.Fatalf("Do through a closed gate: %v", err)
	}
	probe := echo("p", &got)
	probe.Probe = true
	if err := p.Do(ctx, probe); err != nil || got != "p" {
		t.Fatalf("probe through a closed gate: %q, %v", got, err)
	}
	p.Close()
	if err := p.Do(ctx, probe); !errors.Is(err, ErrClosed) {
		t.Fatalf("Do after Close: %v, want ErrClosed", err)
	}
	if st := p.Stats(); st.Open != 0 {
		t.Fatalf("%d connections open after Close", st.Open)
	}
}

func TestStale(t *testing.T) {
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
		{"lost behind a reset", fmt.Errorf("%w: %w", ErrConnLost, netErr("read", syscall.ECONNRESET)), true},
		{"timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, false},
		{"connection refused", netErr("dial", syscall.ECONNREFUSED), false},
		{"nil", nil, false},
		{"other", errors.New("other"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Stale(tt.err); got != tt.want {
				t.Errorf("Stale(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
