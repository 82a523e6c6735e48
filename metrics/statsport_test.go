package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tiercache/tiercache/internal/testenv"
)

// startStatsPort serves a StatsServer over twoTierCache on a loopback
// port and returns its address; the server is shut down, and Serve must
// have returned http.ErrServerClosed, when the test ends.
func startStatsPort(t *testing.T) string {
	t.Helper()
	cache := twoTierCache(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(cache))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewStatsServer(cache, reg)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		// t.Context is already done when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), testenv.Timeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// readRaw connects as a twemproxy collector does, sends send (if any),
// and reads until the server closes.
func readRaw(t *testing.T, addr, send string) []byte {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Generous: a correctness test on a busy machine.
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if send != "" {
		if _, err := io.WriteString(conn, send); err != nil {
			t.Fatal(err)
		}
	}
	body, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading the dump: %v", err)
	}
	return body
}

func topKeys(t *testing.T, body []byte) []string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%v: %q", err, body)
	}
	return slices.Sorted(maps.Keys(m))
}

// TestStatsPortSpeaksRawAndHTTP checks both languages of the port: a
// client that sends nothing, or something that is not HTTP, gets the JSON
// and the connection closes; HTTP clients get the same JSON and /metrics.
func TestStatsPortSpeaksRawAndHTTP(t *testing.T) {
	t.Parallel()
	addr := startStatsPort(t)

	raw := readRaw(t, addr, "")
	if !strings.HasPrefix(string(raw), `{"service":"tiercache"`) || !strings.HasSuffix(string(raw), "}\n") {
		t.Fatalf("raw dump: %q", raw)
	}
	want := topKeys(t, raw)
	if got := topKeys(t, readRaw(t, addr, "stats\n")); !slices.Equal(got, want) {
		t.Errorf("after a non-HTTP line: keys %v, want %v", got, want)
	}
	for _, path := range []string{"/stats", "/"} {
		if got := topKeys(t, get(t, "http://"+addr+path, http.StatusOK)); !slices.Equal(got, want) {
			t.Errorf("GET %s: keys %v, want %v", path, got, want)
		}
	}
	if m := get(t, "http://"+addr+"/metrics", http.StatusOK); !strings.Contains(string(m), "tiercache_tier_hits_total") {
		t.Errorf("/metrics: %s", m)
	}
	// A client gone before it says anything is closed quietly.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
}

// TestStatsPortShutdownLeavesNothing shuts a port down with a raw client
// and an idle HTTP keep-alive connection open, and checks that no
// goroutine of the server is left.
func TestStatsPortShutdownLeavesNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("serve", func(t *testing.T) {
		addr := startStatsPort(t)
		get(t, "http://"+addr+"/stats", http.StatusOK) // leaves a keep-alive connection
		readRaw(t, addr, "")
		http.DefaultClient.CloseIdleConnections()
	})
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestLooksLikeHTTP(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"GET / HTTP/1.1\r\n": true, "HEAD /stats": true, "GE": true, "PRI * HTTP/2.0": true,
		"stats\n": false, "\n": false, " GET": false, "{}": false, "get /": false,
	} {
		if got := looksLikeHTTP([]byte(in)); got != want {
			t.Errorf("looksLikeHTTP(%q) = %v, want %v", in, got, want)
		}
	}
}
