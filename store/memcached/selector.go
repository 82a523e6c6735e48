package memcached

import (
	"errors"
	"fmt"
	"slices"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/store/memcached/ring"
)

// Key placement.
//
// With none of WithHash, WithDistribution and WithHashTag, New hands the
// servers to gomemcache's ServerList in the order given: crc32 of the key
// modulo the number of servers, every server weighted equally, exactly as
// an application calling memcache.New with the same list places keys. That
// is also twemproxy's crc32a/modula when the weights are equal and the list
// is in twemproxy's order (sorted by placement name).
//
// Any of the three asks for twemproxy's placement, which package ring
// reproduces exactly, checked against a running nutcracker: every hash and
// distribution twemproxy has, weights, node names and hash tags, and
// libmemcached's weighted ketama (PHP's OPT_LIBKETAMA_COMPATIBLE) as the
// distribution "libmemcached_ketama".

// The names WithHash and WithDistribution accept.
var (
	knownHashes        = ring.Hashes()
	knownDistributions = ring.Distributions()
)

// newSelector returns the selector for servers under the given twemproxy
// hash, distribution and hash tag; all three empty mean gomemcache's own
// selection. An empty hash or distribution beside a non-empty one takes
// twemproxy's default (fnv1a_64, ketama). It resolves the addresses once.
func newSelector(servers []Server, hash, distribution, hashTag string) (memcache.ServerSelector, error) {
	if hash == "" && distribution == "" && hashTag == "" {
		addrs := make([]string, len(servers))
		for i, s := range servers {
			addrs[i] = s.Addr
		}
		list := new(memcache.ServerList)
		if err := list.SetServers(addrs...); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadServer, err)
		}
		return list, nil
	}
	nodes := make([]ring.Node, len(servers))
	for i, s := range servers {
		nodes[i] = s.node()
	}
	r, err := ring.New(nodes, ring.Config{Hash: hash, Distribution: distribution, HashTag: hashTag})
	if err == nil {
		var sel *ring.Selector
		if sel, err = ring.NewSelector(r); err == nil {
			return sel, nil
		}
	}
	if errors.Is(err, ring.ErrBadConfig) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	return nil, fmt.Errorf("%w: %w", ErrBadServer, err)
}

// WithHashTag sets twemproxy's hash_tag, two bytes such as "{}": of a key
// holding the first and, after it, the second with something between
// them, only what is between them is hashed, so that "user:{42}:name" and
// "user:{42}:mail" share a node. Like WithHash, it asks for twemproxy's
// placement: without WithHash or WithDistribution, fnv1a_64 and ketama.
// The tag is looked for in the key as sent, prefix (WithKeyPrefix)
// included; a key that cannot be sent as it is, and is sent hashed (see
// the key encoding), loses its tag.
func WithHashTag(tag string) Option {
	return func(c *config) error {
		if len(tag) != 2 {
			return fmt.Errorf("%w: hash tag %q, want two bytes such as \"{}\"", ErrInvalidOption, tag)
		}
		c.hashTag = tag
		return nil
	}
}

func validName(name string, known []string) bool { return slices.Contains(known, name) }
