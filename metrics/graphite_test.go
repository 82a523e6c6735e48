package metrics

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestPushGraphite runs the pusher against a local carbon listener that
// parses every plaintext line ("path value timestamp") and checks that the
// chain's counters arrive under the prefix with their values.
func TestPushGraphite(t *testing.T) {
	t.Parallel()
	cache := twoTierCache(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(cache))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	got := map[string]float64{}
	arrived := make(chan struct{}, 1)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			sc := bufio.NewScanner(conn)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) != 3 {
					t.Errorf("not a plaintext line: %q", sc.Text())
					continue
				}
				v, err1 := strconv.ParseFloat(f[1], 64)
				ts, err2 := strconv.ParseInt(f[2], 10, 64)
				if err1 != nil || err2 != nil || time.Since(time.Unix(ts, 0)) > time.Hour {
					t.Errorf("bad value or timestamp: %q", sc.Text())
				}
				mu.Lock()
				got[f[0]] = v
				mu.Unlock()
			}
			conn.Close()
			select {
			case arrived <- struct{}{}:
			default:
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- PushGraphite(ctx, reg, ln.Addr().String(), "app1.cache", 50*time.Millisecond, nil) }()
	select {
	case <-arrived:
	case <-time.After(time.Minute): // generous: a busy machine
		t.Fatal("nothing arrived at the carbon listener")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for path, want := range map[string]float64{
		"app1.cache.tiercache_tier_hits_total.tier.memcached": 1,
		"app1.cache.tiercache_loader_statements_total":        2,
	} {
		if v, ok := got[path]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v; got %d paths", path, v, ok, want, len(got))
		}
	}
}
