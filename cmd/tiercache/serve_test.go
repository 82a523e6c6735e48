package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestServeAnswersAndStopsOnSignal runs tiercache serve in-process: it
// says where it listens, answers a route key and a plain key, and exits 0
// when its context ends (as main's does on SIGTERM or SIGINT).
func TestServeAnswersAndStopsOnSignal(t *testing.T) {
	r := newRig(t, 3, "serve:\n  route: article\n")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	outR, outW := io.Pipe()
	var errOut strings.Builder
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"serve", "-c", r.config, "--listen", "127.0.0.1:0"},
			stdio{in: strings.NewReader(""), out: outW, err: &errOut})
		outW.Close()
	}()
	line, err := bufio.NewReader(outR).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "serving on ")
	if err != nil || !ok {
		t.Fatalf("first line %q, %v; stderr:\n%s", line, err, errOut.String())
	}
	go io.Copy(io.Discard, outR)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(nc, "set 2 9 0 5\r\nplain\r\nget article:2 2\r\nquit\r\n")
	got, err := io.ReadAll(nc)
	if want := "STORED\r\nVALUE article:2 0 9\r\narticle 2\r\nVALUE 2 9 5\r\nplain\r\nEND\r\n"; string(got) != want {
		t.Fatalf("got %q (%v), want %q", got, err, want)
	}
	stop()
	select {
	case code := <-exited:
		if code != exitOK {
			t.Fatalf("exit %d after the signal; stderr:\n%s", code, errOut.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("serve did not exit after its context ended")
	}
}
