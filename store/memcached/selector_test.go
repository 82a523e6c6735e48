package memcached

import (
	"errors"
	"strconv"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/store/memcached/ring"
)

// The proof that placement matches twemproxy is package ring's
// TestMatchesTwemproxy, against a running nutcracker; these tests check
// that the Tier hands its servers and options to ring faithfully.

// TestDefaultIsCRC32aModula checks the claim in selector.go that
// gomemcache's ServerList places keys as twemproxy's crc32a/modula does
// with equal weights, so that moving to WithHash("crc32a") and
// WithDistribution("modula") moves no key.
func TestDefaultIsCRC32aModula(t *testing.T) {
	t.Parallel()
	servers := []Server{{"127.0.0.1:1", 1, ""}, {"127.0.0.1:2", 1, ""}, {"127.0.0.1:3", 1, ""}}
	list, err := newSelector(servers, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := newSelector(servers, "crc32a", "modula", "")
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

// TestSelectorFollowsRing checks that a selector built from servers picks,
// for every key, the server the ring built from the same servers, names
// and weights locates.
func TestSelectorFollowsRing(t *testing.T) {
	t.Parallel()
	servers := []Server{{"127.0.0.1:11211", 1, ""}, {"127.0.0.1:11212", 3, "cache-b"}, {"127.0.0.1:11213", 2, ""}}
	nodes := []ring.Node{
		{Addr: "127.0.0.1:11211", Weight: 1}, {Addr: "127.0.0.1:11212", Weight: 3, Name: "cache-b"}, {Addr: "127.0.0.1:11213", Weight: 2},
	}
	for _, cfg := range []ring.Config{
		{Hash: "fnv1a_64", HashTag: "{}"},
		{Hash: "murmur", Distribution: "modula"},
		{Distribution: "libmemcached_ketama"},
	} {
		sel, err := newSelector(servers, cfg.Hash, cfg.Distribution, cfg.HashTag)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ring.New(nodes, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 1000 {
			key := "user:{" + strconv.Itoa(i) + "}:name"
			addr, err := sel.PickServer(key)
			if err != nil || addr.String() != nodes[r.Locate(key)].Addr {
				t.Fatalf("%+v: %q: selector picks %v (%v), ring %s", cfg, key, addr, err, nodes[r.Locate(key)].Addr)
			}
		}
	}
}

func TestNewSelectorErrors(t *testing.T) {
	t.Parallel()
	ok := []Server{{"127.0.0.1:11211", 1, ""}}
	for _, tt := range []struct {
		name                    string
		servers                 []Server
		hash, distribution, tag string
		want                    error
	}{
		{"unknown hash", ok, "sha1", "", "", ErrInvalidOption},
		{"bad hash tag", ok, "", "", "{", ErrInvalidOption},
		{"host that does not resolve", []Server{{"no-such-host.invalid:11211", 1, ""}}, "md5", "", "", ErrBadServer},
	} {
		if _, err := newSelector(tt.servers, tt.hash, tt.distribution, tt.tag); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestWithHashTag(t *testing.T) {
	t.Parallel()
	for _, tag := range []string{"", "{", "{}}"} {
		if _, err := New([]string{"127.0.0.1:11211"}, WithHashTag(tag)); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("WithHashTag(%q): %v, want ErrInvalidOption", tag, err)
		}
	}
	if _, err := New(nil, WithSelector(new(memcache.ServerList)), WithHashTag("{}")); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("WithSelector and WithHashTag: %v, want ErrInvalidOption", err)
	}
	mc, err := New([]string{"127.0.0.1:11211"}, WithHashTag("{}"))
	if err != nil {
		t.Fatal(err)
	}
	mc.Close()

	// A tag alone asks for twemproxy's defaults, fnv1a_64 and ketama.
	servers := []Server{{"127.0.0.1:11211", 1, ""}, {"127.0.0.1:11212", 1, ""}, {"127.0.0.1:11213", 1, ""}}
	tagged, _ := newSelector(servers, "", "", "{}")
	plain, _ := newSelector(servers, "fnv1a_64", "ketama", "")
	for i := range 500 {
		id := strconv.Itoa(i)
		a, _ := tagged.PickServer("user:{" + id + "}:name")
		b, _ := plain.PickServer(id)
		if a.String() != b.String() {
			t.Fatalf("user:{%s}:name goes to %s, %s to %s", id, a, id, b)
		}
	}
}
