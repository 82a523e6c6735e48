package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
)

// ringKeys are the keys placed in the ring tests.
func ringKeys() []string {
	keys := make([]string, 200)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:{%d}:%d", i%50, i)
	}
	return keys
}

// holder asks every server which one holds key.
func holder(t *testing.T, servers []*testenv.MemcachedServer, key string) string {
	t.Helper()
	found := ""
	for _, s := range servers {
		c := testenv.RawClient(s.Addr)
		_, err := c.Get(key)
		c.Close()
		switch {
		case err == nil:
			if found != "" {
				t.Fatalf("%s is on %s and %s", key, found, s.Addr)
			}
			found = s.Addr
		case err != memcache.ErrCacheMiss:
			t.Fatal(err)
		}
	}
	return found
}

func parseRing(t *testing.T, out string, keys []string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		k, addr, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("ring printed %q", line)
		}
		got[k] = addr
	}
	if len(got) != len(keys) {
		t.Fatalf("ring placed %d keys, want %d", len(got), len(keys))
	}
	return got
}

// TestRingMatchesTheMemcachedTier stores keys through memcached.New's
// placement on real servers and checks that ring names the server that
// holds each.
func TestRingMatchesTheMemcachedTier(t *testing.T) {
	t.Parallel()
	servers := []*testenv.MemcachedServer{testenv.Memcached(t), testenv.Memcached(t), testenv.Memcached(t)}
	specs := []string{servers[0].Addr + ":1 a", servers[1].Addr + ":2 b", servers[2].Addr + ":1 c"}
	keys := ringKeys()
	cases := []struct {
		name  string
		opts  []memcached.Option
		flags []string
	}{
		{"gomemcache placement", nil, nil},
		{"twemproxy modula", []memcached.Option{memcached.WithHash("fnv1a_64"), memcached.WithDistribution("modula")},
			[]string{"--hash", "fnv1a_64", "--distribution", "modula"}},
		{"twemproxy ketama", []memcached.Option{memcached.WithHash("md5"), memcached.WithDistribution("ketama")},
			[]string{"--hash", "md5", "--distribution", "ketama"}},
		{"hash tag alone", []memcached.Option{memcached.WithHashTag("{}")}, []string{"--hash-tag", "{}"}},
	}
	for _, c := range cases {
		mc, err := memcached.New(specs, append(c.opts, memcached.WithTimeout(testenv.Timeout), memcached.WithFailureLimit(testenv.FailureLimit))...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		ctx := context.Background()
		for _, k := range keys {
			if err := mc.Set(ctx, k, tier.Entry{Value: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		args := append([]string{"ring", "--servers", strings.Join(specs, ",")}, c.flags...)
		got := parseRing(t, mustCLI(t, exitOK, strings.Join(keys, "\n")+"\n", args...), keys)
		for _, k := range keys {
			if want := holder(t, servers, k); got[k] != want {
				t.Fatalf("%s: ring puts %s on %s, the memcached tier put it on %s", c.name, k, got[k], want)
			}
			_ = mc.Delete(ctx, k)
		}
		mc.Close()
	}
}

// TestRingMatchesNutcracker sets keys through a real twemproxy and checks
// that ring -c nutcracker.yml --pool names the server that holds each.
func TestRingMatchesNutcracker(t *testing.T) {
	t.Parallel()
	servers := []*testenv.MemcachedServer{testenv.Memcached(t), testenv.Memcached(t)}
	cfg := fmt.Sprintf(`alpha:
  listen: 127.0.0.1:%d
  hash: fnv1a_64
  distribution: ketama
  servers:
   - %s:1 node0
   - %s:1 node1
`, testenv.FreePort(t), servers[0].Addr, servers[1].Addr)
	proxy := testenv.Nutcracker(t, cfg)
	path := filepath.Join(t.TempDir(), "nutcracker.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := ringKeys()
	client := testenv.RawClient(proxy.Addr)
	client.Timeout = testenv.Timeout
	defer client.Close()
	for _, k := range keys {
		if err := client.Set(&memcache.Item{Key: k, Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	got := parseRing(t, mustCLI(t, exitOK, strings.Join(keys, "\n"), "ring", "-c", path, "--pool", "alpha"), keys)
	for _, k := range keys {
		if want := holder(t, servers, k); got[k] != want {
			t.Fatalf("ring puts %s on %s, nutcracker put it on %s", k, got[k], want)
		}
	}
	if code, _, stderr := cli(t, "", "ring", "-c", path, "--pool", "beta"); code != exitFailure || !strings.Contains(stderr, "pools: alpha") {
		t.Fatalf("unknown pool: exit %d, %s", code, stderr)
	}
}
