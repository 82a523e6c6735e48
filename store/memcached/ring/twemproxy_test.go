package ring_test

import (
	"bufio"
	"cmp"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/store/memcached/ring"
)

// keysPerPool is how many keys each nutcracker pool stores.
const keysPerPool = 2000

// A pool is one nutcracker pool and the ring that should place keys as it
// does.
type pool struct {
	name   string
	listen string
	nodes  []ring.Node // in the order the configuration lists them
	cfg    ring.Config
}

// TestMatchesTwemproxy is the proof that Ring places keys as twemproxy
// does. It starts one nutcracker in front of six real memcached nodes, two
// of them on port 11211 (on loopback addresses of their own), with a pool
// for every hash × {ketama, modula} × node layout (equal or weighted,
// named or unnamed, with or without port 11211, weights that twemproxy's
// float arithmetic rounds down), pools with a hash tag, and a random pool.
// Through each pool it stores 2000 keys, bytes from 0x80 up and hash tags
// among them, then asks every memcached directly which keys it holds, and
// checks that each key is on exactly the node Locate names (random: on one
// node of the pool).
//
// For unnamed nodes, libmemcached_ketama with the same hash must agree with
// twemproxy's ketama too: that is the claim in the package documentation.
func TestMatchesTwemproxy(t *testing.T) {
	t.Parallel()
	var local, defaultPort []string
	for range 4 {
		local = append(local, testenv.Memcached(t).Addr)
	}
	for range 2 {
		defaultPort = append(defaultPort, testenv.Memcached(t, testenv.WithLoopbackPort(11211)).Addr)
	}

	named := func(weights ...int) []ring.Node {
		// Names of different lengths, so that twemproxy's order (shorter
		// first) differs from the alphabetical one and from the list. The
		// last is so long that twemproxy cuts the names of its points
		// from "-10" on at 272 bytes: "<name>-10" becomes "<name>-1".
		names := []string{"cache-three", "b", "alpha", strings.Repeat("n", 270)}
		nodes := make([]ring.Node, len(weights))
		for i, addr := range local[:len(weights)] {
			nodes[i] = ring.Node{Addr: addr, Weight: weights[i], Name: names[i]}
		}
		return nodes
	}
	unnamed := func(addrs []string, weights ...int) []ring.Node {
		nodes := make([]ring.Node, len(addrs))
		for i, addr := range addrs {
			nodes[i] = ring.Node{Addr: addr, Weight: weights[i]}
		}
		return nodes
	}
	layouts := []struct {
		name  string
		nodes []ring.Node
	}{
		{"equal-unnamed", unnamed(local, 1, 1, 1, 1)},
		{"weighted-unnamed", unnamed(local, 1, 3, 7, 10)},
		{"equal-named", named(1, 1, 1, 1)},
		{"weighted-named", named(5, 1, 2, 3)},
		{"port11211-unnamed", unnamed(append(slices.Clone(defaultPort), local[:2]...), 2, 1, 1, 3)},
		// twemproxy computes a node's share of the ring in C floats: here
		// the first two shares come out a hair under 58 digests, and
		// each node gets 228 points where exact arithmetic gives 232.
		{"float-rounding-named", named(29, 29, 2)},
	}

	var pools []pool
	ports := map[int]bool{}
	add := func(name string, nodes []ring.Node, cfg ring.Config) {
		// FreePort may hand out a port again once its probe is closed.
		port := testenv.FreePort(t)
		for ports[port] {
			port = testenv.FreePort(t)
		}
		ports[port] = true
		pools = append(pools, pool{
			name:   name,
			listen: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			nodes:  nodes,
			cfg:    cfg,
		})
	}
	for _, hash := range ring.Hashes() {
		for _, dist := range []string{"ketama", "modula"} {
			for _, l := range layouts {
				add(hash+"/"+dist+"/"+l.name, l.nodes, ring.Config{Hash: hash, Distribution: dist})
			}
			add(hash+"/"+dist+"/hash-tag", layouts[3].nodes, ring.Config{Hash: hash, Distribution: dist, HashTag: "{}"})
		}
	}
	add("random", layouts[1].nodes, ring.Config{Distribution: "random"})
	testenv.Nutcracker(t, nutcrackerConfig(pools))

	direct := map[string]*memcache.Client{}
	for _, addr := range append(local, defaultPort...) {
		c := testenv.RawClient(addr)
		c.Timeout = 5 * time.Second
		c.MaxIdleConns = 32
		direct[addr] = c
	}

	for i, p := range pools {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			// Keys are unique across pools, which share the nodes.
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			keys := testKeys(rng, fmt.Sprintf("p%d:", i), keysPerPool)
			storeThrough(t, p.listen, keys)
			holders := whoHolds(t, direct, keys)

			r := newRing(t, reversed(p.nodes), p.cfg)
			var alsoLibmemcached *ring.Ring
			if p.cfg.Distribution == "ketama" && p.nodes[0].Name == "" && p.cfg.HashTag == "" {
				alsoLibmemcached = newRing(t, p.nodes, ring.Config{Hash: p.cfg.Hash, Distribution: "libmemcached_ketama"})
			}
			onNode := map[string]int{}
			for _, key := range keys {
				got := holders[key]
				if len(got) != 1 {
					t.Fatalf("key %q is on %v through nutcracker, want exactly one node", key, got)
				}
				onNode[got[0]]++
				if p.cfg.Distribution == "random" {
					if !slices.ContainsFunc(p.nodes, func(n ring.Node) bool { return n.Addr == got[0] }) {
						t.Fatalf("key %q is on %s, not a node of the pool", key, got[0])
					}
					continue
				}
				if want := r.Nodes()[r.Locate(key)].Addr; got[0] != want {
					t.Errorf("key %q: nutcracker put it on %s, Locate says %s", key, got[0], want)
				}
				if alsoLibmemcached != nil {
					if want := alsoLibmemcached.Nodes()[alsoLibmemcached.Locate(key)].Addr; got[0] != want {
						t.Errorf("key %q: nutcracker put it on %s, libmemcached_ketama says %s", key, got[0], want)
					}
				}
			}
			// crc32 is 15 bits wide, and every key hashes below the
			// ring's first point: one node takes them all, in the proxy
			// too.
			if oneNode := p.cfg.Hash == "crc32" && p.cfg.Distribution == "ketama"; oneNode != (len(onNode) == 1) {
				t.Errorf("keys went to %d nodes: %v", len(onNode), onNode)
			}
		})
	}
}

func newRing(t *testing.T, nodes []ring.Node, cfg ring.Config) *ring.Ring {
	t.Helper()
	r, err := ring.New(nodes, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// reversed returns nodes in the opposite order: where keys go must not
// depend on it.
func reversed(nodes []ring.Node) []ring.Node {
	r := slices.Clone(nodes)
	slices.Reverse(r)
	return r
}

func nutcrackerConfig(pools []pool) string {
	var b strings.Builder
	for i, p := range pools {
		fmt.Fprintf(&b, "pool%d:\n  listen: %s\n  hash: %s\n  distribution: %s\n",
			i, p.listen, cmp.Or(p.cfg.Hash, "fnv1a_64"), p.cfg.Distribution)
		if p.cfg.HashTag != "" {
			fmt.Fprintf(&b, "  hash_tag: %q\n", p.cfg.HashTag)
		}
		b.WriteString("  auto_eject_hosts: false\n  timeout: 5000\n  servers:\n")
		for _, n := range p.nodes {
			fmt.Fprintf(&b, "   - %s:%d", n.Addr, n.Weight)
			if n.Name != "" {
				b.WriteString(" " + n.Name)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// testKeys returns n distinct keys that memcached accepts, each starting
// with prefix: plain ones, random bytes (0x80 and up included), long ones,
// and every shape of hash tag: tagged, empty, unclosed, reversed, nested.
func testKeys(rng *rand.Rand, prefix string, n int) []string {
	shapes := []func(i int) string{
		func(i int) string { return "key-" + strconv.Itoa(i) },
		func(i int) string { return randomKeyBytes(rng, 1+rng.IntN(40)) },
		func(i int) string { return randomKeyBytes(rng, 150+rng.IntN(90)) },
		func(i int) string { return "user:{" + strconv.Itoa(i%50) + "}:" + randomKeyBytes(rng, 5) },
		func(i int) string { return "{" + randomKeyBytes(rng, 1+rng.IntN(8)) + "}" + strconv.Itoa(i) },
		func(i int) string { return "empty{}tag" + strconv.Itoa(i) },
		func(i int) string { return "unclosed{" + strconv.Itoa(i) },
		func(i int) string { return "}reversed{" + strconv.Itoa(i) },
		func(i int) string { return "{{nested}}" + strconv.Itoa(i) },
		func(i int) string { return "{}{second}" + strconv.Itoa(i) },
		func(i int) string { return "x{\xe9\xff}" + strconv.Itoa(i) },
	}
	seen := make(map[string]bool, n)
	keys := make([]string, 0, n)
	for i := 0; len(keys) < n; i++ {
		k := prefix + shapes[i%len(shapes)](i)
		if len(k) > 250 {
			k = k[:250]
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// randomKeyBytes returns n bytes memcached accepts in a key: anything but
// spaces and control bytes.
func randomKeyBytes(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		for b[i] <= ' ' || b[i] == 0x7f {
			b[i] = byte(rng.IntN(256))
		}
	}
	return string(b)
}

// storeThrough sets every key through the proxy at addr, pipelined on one
// connection: nutcracker answers in request order.
func storeThrough(t *testing.T, addr string, keys []string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	written := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(conn)
		for _, k := range keys {
			fmt.Fprintf(w, "set %s 0 0 1\r\nv\r\n", k)
		}
		written <- w.Flush()
	}()
	r := bufio.NewReader(conn)
	for _, k := range keys {
		line, err := r.ReadString('\n')
		if err != nil || line != "STORED\r\n" {
			t.Fatalf("set %q through nutcracker at %s: %q, %v", k, addr, line, err)
		}
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
}

// whoHolds asks every node which of keys it has, and returns, for each
// key, the addresses of the nodes holding it.
func whoHolds(t *testing.T, direct map[string]*memcache.Client, keys []string) map[string][]string {
	t.Helper()
	holders := make(map[string][]string, len(keys))
	for addr, c := range direct {
		for batch := range slices.Chunk(keys, 500) {
			items, err := c.GetMulti(batch)
			if err != nil {
				t.Fatalf("get from %s: %v", addr, err)
			}
			for k := range items {
				holders[k] = append(holders[k], addr)
			}
		}
	}
	return holders
}
