package ring_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/tiercache/tiercache/store/memcached/ring"
)

func nodes(weights ...int) []ring.Node {
	ns := make([]ring.Node, len(weights))
	for i, w := range weights {
		ns[i] = ring.Node{Addr: fmt.Sprintf("10.0.0.%d:11211", i+1), Weight: w}
	}
	return ns
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	one := nodes(1)
	tests := []struct {
		name  string
		nodes []ring.Node
		cfg   ring.Config
		want  error // nil: New succeeds
	}{
		{"defaults", one, ring.Config{}, nil},
		{"every distribution", one, ring.Config{Distribution: "libmemcached_ketama"}, nil},
		{"no nodes", nil, ring.Config{}, ring.ErrNoNodes},
		{"no port", []ring.Node{{Addr: "10.0.0.1", Weight: 1}}, ring.Config{}, ring.ErrBadNode},
		{"no host", []ring.Node{{Addr: ":11211", Weight: 1}}, ring.Config{}, ring.ErrBadNode},
		{"port 0", []ring.Node{{Addr: "h:0", Weight: 1}}, ring.Config{}, ring.ErrBadNode},
		{"port too large", []ring.Node{{Addr: "h:65536", Weight: 1}}, ring.Config{}, ring.ErrBadNode},
		{"port not a number", []ring.Node{{Addr: "h:memcache", Weight: 1}}, ring.Config{}, ring.ErrBadNode},
		{"zero weight", nodes(1, 0), ring.Config{}, ring.ErrBadNode},
		{"negative weight", nodes(-1), ring.Config{}, ring.ErrBadNode},
		{"largest weight", nodes(ring.MaxWeight), ring.Config{}, nil},
		{"weight too large", nodes(ring.MaxWeight + 1), ring.Config{}, ring.ErrBadNode},
		{"same address", append(nodes(1), ring.Node{Addr: "10.0.0.1:11211", Weight: 1, Name: "x"}), ring.Config{}, ring.ErrDuplicateNode},
		{"same name", []ring.Node{{Addr: "h:1", Weight: 1, Name: "a"}, {Addr: "h:2", Weight: 1, Name: "a"}}, ring.Config{}, ring.ErrDuplicateNode},
		{"name equals another's placement name", append(nodes(1), ring.Node{Addr: "h:1", Weight: 1, Name: "10.0.0.1"}), ring.Config{}, ring.ErrDuplicateNode},
		{"unknown hash", one, ring.Config{Hash: "sha1"}, ring.ErrBadConfig},
		{"Go's name for a hash", one, ring.Config{Hash: "fnv1a-64"}, ring.ErrBadConfig},
		{"unknown distribution", one, ring.Config{Distribution: "rendezvous"}, ring.ErrBadConfig},
		{"hash tag of one byte", one, ring.Config{HashTag: "{"}, ring.ErrBadConfig},
		{"hash tag of three bytes", one, ring.Config{HashTag: "{}}"}, ring.ErrBadConfig},
		{"hash tag", one, ring.Config{HashTag: "{}"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ring.New(tt.nodes, tt.cfg)
			if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
				t.Fatalf("New: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want ring.Config }{
		{ring.Config{}, ring.Config{Hash: "fnv1a_64", Distribution: "ketama"}},
		{ring.Config{Distribution: "modula"}, ring.Config{Hash: "fnv1a_64", Distribution: "modula"}},
		{ring.Config{Hash: "md5", HashTag: "{}"}, ring.Config{Hash: "md5", Distribution: "ketama", HashTag: "{}"}},
		{ring.Config{Distribution: "libmemcached_ketama"}, ring.Config{Hash: "md5", Distribution: "libmemcached_ketama"}},
	} {
		r, err := ring.New(nodes(1, 2), tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Config(); got != tt.want {
			t.Errorf("New(%+v).Config() = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestPlacementName(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		node ring.Node
		want string
	}{
		{ring.Node{Addr: "10.0.0.1:11211"}, "10.0.0.1"},
		{ring.Node{Addr: "10.0.0.1:11212"}, "10.0.0.1:11212"},
		{ring.Node{Addr: "cache.example:11211"}, "cache.example"},
		{ring.Node{Addr: "10.0.0.1:11211", Name: "cache-a"}, "cache-a"},
		{ring.Node{Addr: "[::1]:11211"}, "[::1]"},
		{ring.Node{Addr: "[::1]:22122"}, "[::1]:22122"},
		// twemproxy compares the port as a number, and keeps the text.
		{ring.Node{Addr: "h:011211"}, "h"},
		{ring.Node{Addr: "h:0112"}, "h:0112"},
	} {
		if got := ring.PlacementName(tt.node); got != tt.want {
			t.Errorf("PlacementName(%+v) = %q, want %q", tt.node, got, tt.want)
		}
	}
}

// TestLocateIgnoresOrder checks that where keys go does not depend on the
// order of the nodes given to New, and that Locate's index is into that
// order.
func TestLocateIgnoresOrder(t *testing.T) {
	t.Parallel()
	ns := nodes(1, 2, 3, 4, 5)
	ns[2].Name = "named"
	for _, dist := range []string{"ketama", "modula", "libmemcached_ketama"} {
		a, err := ring.New(ns, ring.Config{Distribution: dist})
		if err != nil {
			t.Fatal(err)
		}
		shuffled := slices.Clone(ns)
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		b, err := ring.New(shuffled, ring.Config{Distribution: dist})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2000 {
			key := "key-" + strconv.Itoa(i)
			if x, y := ns[a.Locate(key)], shuffled[b.Locate(key)]; x != y {
				t.Fatalf("%s: %q goes to %v, or to %v with the nodes shuffled", dist, key, x, y)
			}
		}
	}
}

func TestLocateOneNode(t *testing.T) {
	t.Parallel()
	for _, dist := range ring.Distributions() {
		r, err := ring.New(nodes(3), ring.Config{Distribution: dist, HashTag: "{}"})
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"", "a", "{}", "{x}"} {
			if i := r.Locate(key); i != 0 {
				t.Errorf("%s: Locate(%q) = %d on a ring of one", dist, key, i)
			}
		}
	}
}

// shares returns the fraction of n keys that r places on each node.
func shares(r *ring.Ring, n int) []float64 {
	count := make([]float64, len(r.Nodes()))
	for i := range n {
		count[r.Locate("key-"+strconv.Itoa(i))]++
	}
	for i := range count {
		count[i] /= float64(n)
	}
	return count
}

func TestWeights(t *testing.T) {
	t.Parallel()
	for _, dist := range []string{"ketama", "modula", "libmemcached_ketama"} {
		r, err := ring.New(nodes(1, 3), ring.Config{Distribution: dist, Hash: "md5"})
		if err != nil {
			t.Fatal(err)
		}
		if s := shares(r, 20000); s[1] < 0.7 || s[1] > 0.8 {
			t.Errorf("%s: weight 3 of 4 holds %.3f of the keys", dist, s[1])
		}
	}
}

// TestRandomScatters checks twemproxy's random: every call draws a node,
// whatever the key, and weights play no part.
func TestRandomScatters(t *testing.T) {
	t.Parallel()
	r, err := ring.New(nodes(1, 9), ring.Config{Distribution: "random"})
	if err != nil {
		t.Fatal(err)
	}
	count := make([]int, 2)
	for range 4000 {
		count[r.Locate("one key")]++
	}
	if count[0] < 1800 || count[0] > 2200 {
		t.Fatalf("4000 reads of one key went %v: want about half each, weights ignored", count)
	}
}

// TestHashTag checks that keys sharing a tag share a node, and that a
// tagged key goes where its tag alone would.
func TestHashTag(t *testing.T) {
	t.Parallel()
	for _, dist := range []string{"ketama", "modula"} {
		r, err := ring.New(nodes(1, 1, 1, 1, 1), ring.Config{Distribution: dist, HashTag: "{}"})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 500 {
			tag := strconv.Itoa(i)
			want := r.Locate(tag)
			for _, key := range []string{"user:{" + tag + "}:name", "{" + tag + "}", "x{" + tag + "}{y}"} {
				if got := r.Locate(key); got != want {
					t.Fatalf("%s: %q goes to node %d, its tag %q to %d", dist, key, got, tag, want)
				}
			}
		}
	}
}

// TestLibmemcachedIgnoresNames checks that libmemcached_ketama names its
// points by address, there being no names in libmemcached.
func TestLibmemcachedIgnoresNames(t *testing.T) {
	t.Parallel()
	ns := nodes(1, 2, 3)
	named := slices.Clone(ns)
	for i := range named {
		named[i].Name = "n" + strconv.Itoa(i)
	}
	cfg := ring.Config{Distribution: "libmemcached_ketama"}
	a, _ := ring.New(ns, cfg)
	b, _ := ring.New(named, cfg)
	for i := range 2000 {
		key := strconv.Itoa(i)
		if a.Locate(key) != b.Locate(key) {
			t.Fatalf("%q moves when the nodes are named", key)
		}
	}
}

// TestMovement checks the point of ketama: adding a node to N moves about
// 1/(N+1) of the keys, all of them to the new node, and removing one moves
// about 1/N, only the removed node's. Modula, for contrast, moves most.
func TestMovement(t *testing.T) {
	t.Parallel()
	const keys = 20000
	const tolerance = 0.3 // relative
	for n := 4; n <= 8; n++ {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			before, _ := ring.New(nodes(slices.Repeat([]int{1}, n)...), ring.Config{})
			after, _ := ring.New(nodes(slices.Repeat([]int{1}, n+1)...), ring.Config{})
			var moved int
			for i := range keys {
				key := "key-" + strconv.Itoa(i)
				x, y := before.Locate(key), after.Locate(key)
				if x != y {
					moved++
					if y != n {
						t.Fatalf("%q moved from node %d to node %d, not to the new node %d", key, x, y, n)
					}
				}
			}
			// Adding node n to n nodes; removing it from n+1 is the same
			// move seen the other way: about 1/(n+1) of n+1 nodes' keys.
			want := float64(keys) / float64(n+1)
			if got := float64(moved); got < want*(1-tolerance) || got > want*(1+tolerance) {
				t.Errorf("adding a node to %d moved %d keys of %d, want about %.0f", n, moved, keys, want)
			}

			// Removing one of n: only its keys move, about 1/n of them.
			less, _ := ring.New(slices.Delete(nodes(slices.Repeat([]int{1}, n)...), 1, 2), ring.Config{})
			moved = 0
			for i := range keys {
				key := "key-" + strconv.Itoa(i)
				x := before.Nodes()[before.Locate(key)]
				y := less.Nodes()[less.Locate(key)]
				if x != y {
					moved++
					if x != before.Nodes()[1] {
						t.Fatalf("%q moved from %v, which stayed, to %v", key, x, y)
					}
				}
			}
			want = float64(keys) / float64(n)
			if got := float64(moved); got < want*(1-tolerance) || got > want*(1+tolerance) {
				t.Errorf("removing one of %d nodes moved %d keys of %d, want about %.0f", n, moved, keys, want)
			}
		})
	}
}

// TestLocateConcurrent runs Locate from many goroutines, for the race
// detector: a Ring is immutable.
func TestLocateConcurrent(t *testing.T) {
	t.Parallel()
	for _, dist := range ring.Distributions() {
		r, _ := ring.New(nodes(1, 2, 3), ring.Config{Distribution: dist, HashTag: "{}"})
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 1000 {
					if n := r.Locate(strconv.Itoa(g*1000 + i)); n < 0 || n > 2 {
						t.Errorf("%s: Locate = %d", dist, n)
						return
					}
				}
			})
		}
		wg.Wait()
	}
}

func TestLocateDoesNotAllocate(t *testing.T) {
	long := string(make([]byte, 250))
	for _, dist := range ring.Distributions() {
		for _, hash := range ring.Hashes() {
			r, err := ring.New(nodes(1, 2, 3, 4), ring.Config{Hash: hash, Distribution: dist, HashTag: "{}"})
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{"user:{42}:name", long} {
				if n := testing.AllocsPerRun(100, func() { r.Locate(key) }); n != 0 {
					t.Errorf("%s/%s: Locate of %d bytes allocates %v times", dist, hash, len(key), n)
				}
			}
		}
	}
}
