package memcached

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"
)

// TestDefaultIsCRC32aModula checks the claim in selector.go that
// gomemcache's ServerList places keys as twemproxy's crc32a/modula does
// with equal weights, so that moving to WithHash("crc32a") and
// WithDistribution("modula") moves no key.
func TestDefaultIsCRC32aModula(t *testing.T) {
	t.Parallel()
	servers := []Server{{"127.0.0.1:1", 1, ""}, {"127.0.0.1:2", 1, ""}, {"127.0.0.1:3", 1, ""}}
	list, err := newSelector(servers, "", "")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := newSelector(servers, "crc32a", "modula")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		key := "key-" + strconv.Itoa(i)
		a, _ := list.PickServer(key)
		b, _ := mod.PickServer(key)
		if a.String() != b.String() {
			t.Fatalf("%q: ServerList picks %s, crc32a/modula %s", key, a, b)
		}
	}
}

func TestModulaWeights(t *testing.T) {
	t.Parallel()
	servers := []Server{{"127.0.0.1:1", 1, ""}, {"127.0.0.1:2", 3, ""}}
	sel, err := newSelector(servers, "md5", "modula")
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for i := range 4000 {
		addr, _ := sel.PickServer("key-" + strconv.Itoa(i))
		count[addr.String()]++
	}
	if n := count["127.0.0.1:2"]; n < 2800 || n > 3200 {
		t.Fatalf("weight 3 of 4 got %d of 4000 keys: %v", n, count)
	}
}

// TestModulaMatchesTwemproxy runs nutcracker with a modula pool for every
// hash this package implements, over three memcached nodes with weights 1,
// 2 and 3, stores keys through it, and checks that each landed on the node
// this package's selector picks. Keys include bytes from 0x80 up, which
// twemproxy hashes through a signed char.
func TestModulaMatchesTwemproxy(t *testing.T) {
	t.Parallel()
	nutcracker, err := exec.LookPath("nutcracker")
	if err != nil {
		t.Skip("nutcracker (twemproxy) not installed")
	}
	nodes := []*memcachedProcess{startMemcached(t), startMemcached(t), startMemcached(t)}
	servers := make([]Server, len(nodes))
	for i, n := range nodes {
		servers[i] = Server{Addr: n.addr, Weight: i + 1}
	}
	// twemproxy sorts servers by name; list them in another order to
	// check that this package sorts too.
	slices.SortFunc(servers, func(a, b Server) int { return -comparePlacementNames(a, b) })

	var conf strings.Builder
	pools := map[string]string{} // hash name -> listen address
	for name := range hashFuncs {
		listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		pools[name] = listen
		fmt.Fprintf(&conf, "%s:\n  listen: %s\n  hash: %s\n  distribution: modula\n  auto_eject_hosts: false\n  timeout: 1000\n  servers:\n", name, listen, name)
		for _, s := range servers {
			fmt.Fprintf(&conf, "   - %s\n", s)
		}
	}
	dir := t.TempDir()
	confPath := filepath.Join(dir, "nutcracker.yml")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nutcracker, "-c", confPath, "-s", strconv.Itoa(freePort(t)), "-a", "127.0.0.1",
		"-o", filepath.Join(dir, "nutcracker.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	logs := func() string { b, _ := os.ReadFile(filepath.Join(dir, "nutcracker.log")); return string(b) }
	for _, listen := range pools {
		waitListening(t, listen, logs)
	}

	direct := make(map[string]*memcache.Client, len(nodes))
	for _, n := range nodes {
		direct[n.addr] = memcache.New(n.addr)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for name, listen := range pools {
		sel, err := newSelector(servers, name, "modula")
		if err != nil {
			t.Fatal(err)
		}
		proxy := memcache.New(listen)
		proxy.Timeout = 0 // gomemcache's default
		for i := range 100 {
			key := name + ":" + randomLegalKey(rng) + strconv.Itoa(i)
			if err := proxy.Set(&memcache.Item{Key: key, Value: []byte("v")}); err != nil {
				t.Fatalf("set through nutcracker: %v\n%s", err, logs())
			}
			want, _ := sel.PickServer(key)
			var holders []string
			for addr, c := range direct {
				if _, err := c.Get(key); err == nil {
					holders = append(holders, addr)
				}
			}
			if len(holders) != 1 || holders[0] != want.String() {
				t.Errorf("hash %s: key %q is on %v, this package picks %s", name, key, holders, want)
			}
		}
		proxy.Close()
	}
	for _, c := range direct {
		c.Close()
	}
}

// randomLegalKey returns up to 40 bytes memcached accepts in a key,
// including bytes from 0x80 up.
func randomLegalKey(rng *rand.Rand) string {
	b := make([]byte, rng.IntN(40))
	for i := range b {
		for b[i] <= ' ' || b[i] == 0x7f {
			b[i] = byte(rng.IntN(256))
		}
	}
	return string(b)
}
