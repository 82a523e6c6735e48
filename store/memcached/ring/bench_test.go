package ring_test

import (
	"strconv"
	"testing"

	"github.com/tiercache/tiercache/store/memcached/ring"
)

// BenchmarkLocate measures placing one key: twemproxy's default (ketama,
// fnv1a_64) over 4 and 64 nodes, and a few other hashes and distributions.
//
//	go test ./store/memcached/ring -run '^$' -bench Locate
func BenchmarkLocate(b *testing.B) {
	for _, bc := range []struct {
		name  string
		nodes int
		cfg   ring.Config
	}{
		{"ketama/fnv1a_64/4", 4, ring.Config{}},
		{"ketama/fnv1a_64/64", 64, ring.Config{}},
		{"ketama/md5/4", 4, ring.Config{Hash: "md5"}},
		{"ketama/murmur/4", 4, ring.Config{Hash: "murmur"}},
		{"ketama/fnv1a_64/hash-tag/4", 4, ring.Config{HashTag: "{}"}},
		{"modula/fnv1a_64/4", 4, ring.Config{Distribution: "modula"}},
		{"libmemcached_ketama/md5/4", 4, ring.Config{Distribution: "libmemcached_ketama"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ns := make([]ring.Node, bc.nodes)
			for i := range ns {
				ns[i] = ring.Node{Addr: "10.0.0." + strconv.Itoa(i+1) + ":11211", Weight: 1}
			}
			r, err := ring.New(ns, bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			keys := make([]string, 1024)
			for i := range keys {
				keys[i] = "user:{" + strconv.Itoa(i) + "}:profile"
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r.Locate(keys[i%len(keys)])
				i++
			}
		})
	}
}

// BenchmarkNew measures building a ring: how long a membership change
// takes to apply.
func BenchmarkNew(b *testing.B) {
	for _, n := range []int{4, 64} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			ns := make([]ring.Node, n)
			for i := range ns {
				ns[i] = ring.Node{Addr: "10.0.0." + strconv.Itoa(i+1) + ":11211", Weight: 1}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ring.New(ns, ring.Config{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
