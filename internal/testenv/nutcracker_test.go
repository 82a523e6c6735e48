package testenv

import (
	"fmt"
	"testing"
)

func TestNutcrackerProxiesToMemcached(t *testing.T) {
	t.Parallel()
	mc := Memcached(t)
	proxy := Nutcracker(t, fmt.Sprintf(`alpha:
  listen: 127.0.0.1:%d
  hash: fnv1a_64
  distribution: ketama
  timeout: 1000
  servers:
   - %s:1 node0
`, FreePort(t), mc.Addr))
	if got := mustRoundTrip(t, proxy.Addr, "set k 0 0 1\r\nv\r\n"); got != "STORED" {
		t.Fatalf("set through nutcracker: %q", got)
	}
	if got := mustRoundTrip(t, mc.Addr, "get k\r\n"); got != "VALUE k 0 1" {
		t.Fatalf("get from memcached directly: %q, want the value set through nutcracker", got)
	}
	if err := dialable(proxy.StatsAddr); err != nil {
		t.Errorf("stats port: %v", err)
	}
}
