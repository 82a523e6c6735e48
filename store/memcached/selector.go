package memcached

import (
	"fmt"
	"net"
	"slices"
	"sort"

	"github.com/bradfitz/gomemcache/memcache"
)

// Key placement.
//
// With no WithHash or WithDistribution, New hands the servers to
// gomemcache's ServerList in the order given: crc32 of the key modulo the
// number of servers, every server weighted equally, exactly as an
// application calling memcache.New with the same list places keys. That is
// also twemproxy's crc32a/modula when the weights are equal and the list is
// in twemproxy's order (sorted by placement name).
//
// WithHash and WithDistribution ask for twemproxy's placement by name. Only
// what is implemented exactly is accepted (see hash.go). Not yet: ketama,
// twemproxy's default, the consistent ring that moves only a node's share
// of the keys when the node comes or goes; and random, which would scatter
// the reads of one key over every node.

// knownDistributions lists every distribution name twemproxy accepts.
var knownDistributions = []string{"ketama", "modula", "random"}

// twemproxy's defaults for a pool that names neither.
const (
	defaultHash         = "fnv1a_64"
	defaultDistribution = "ketama"
)

// newSelector returns the selector for servers under the given twemproxy
// hash and distribution names; empty names mean gomemcache's own
// selection.
func newSelector(servers []Server, hash, distribution string) (memcache.ServerSelector, error) {
	if hash == "" && distribution == "" {
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
	if hash == "" {
		hash = defaultHash
	}
	if distribution == "" {
		distribution = defaultDistribution
	}
	if distribution != "modula" {
		return nil, fmt.Errorf("%w: distribution %q (only modula so far)", ErrUnsupported, distribution)
	}
	fn, ok := hashFuncs[hash]
	if !ok {
		return nil, fmt.Errorf("%w: hash %q", ErrUnsupported, hash)
	}
	return newModula(servers, fn)
}

// modula is twemproxy's modula distribution without host ejection: the
// servers are sorted by placement name, as twemproxy sorts a pool, server i
// then owns Weight consecutive slots, and a key goes to slot hash(key) mod
// (sum of weights). It is immutable and safe for concurrent use.
type modula struct {
	addrs []net.Addr
	// ends[i] is the first slot after server i's slots.
	ends []uint32
	hash hashFunc
}

func newModula(servers []Server, hash hashFunc) (*modula, error) {
	m := &modula{hash: hash}
	var total uint32
	for _, s := range slices.SortedFunc(slices.Values(servers), comparePlacementNames) {
		addr, err := resolve(s)
		if err != nil {
			return nil, err
		}
		total += uint32(s.Weight)
		m.addrs = append(m.addrs, addr)
		m.ends = append(m.ends, total)
	}
	return m, nil
}

// PickServer implements memcache.ServerSelector.
func (m *modula) PickServer(key string) (net.Addr, error) {
	if len(m.addrs) == 0 {
		return nil, memcache.ErrNoServers
	}
	// twemproxy skips hashing for a single server and hashes an empty key
	// to 0; this package never sends an empty key, but stays faithful.
	if len(m.addrs) == 1 || key == "" {
		return m.addrs[0], nil
	}
	slot := m.hash(key) % m.ends[len(m.ends)-1]
	i := sort.Search(len(m.ends), func(i int) bool { return slot < m.ends[i] })
	return m.addrs[i], nil
}

// Each implements memcache.ServerSelector.
func (m *modula) Each(f func(net.Addr) error) error {
	for _, a := range m.addrs {
		if err := f(a); err != nil {
			return err
		}
	}
	return nil
}

// resolve looks s up once, as gomemcache's ServerList does, and returns an
// address whose String is computed once: gomemcache calls it on every
// operation to find the connection pool.
func resolve(s Server) (net.Addr, error) {
	tcp, err := net.ResolveTCPAddr("tcp", s.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadServer, s.Addr, err)
	}
	return staticAddr{network: tcp.Network(), str: tcp.String()}, nil
}

type staticAddr struct{ network, str string }

func (a staticAddr) Network() string { return a.network }
func (a staticAddr) String() string  { return a.str }

func validName(name string, known []string) bool { return slices.Contains(known, name) }
