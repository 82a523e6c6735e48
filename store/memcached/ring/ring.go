package ring

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
)

// MaxWeight is the largest weight New accepts. twemproxy sets no limit,
// but weights are relative shares, and the bound keeps any realistic
// pool's total far from overflowing the 32-bit arithmetic keys are placed
// with.
const MaxWeight = 1<<16 - 1

// defaultPort is memcached's port, which twemproxy and libmemcached leave
// out of the names they hash for the ketama ring.
const defaultPort = 11211

// Node is one memcached server.
type Node struct {
	// Addr is host:port, an IPv6 host in brackets, as the server is dialed
	// and as twemproxy's configuration writes it.
	Addr string
	// Weight is the node's relative share of the keys, from 1 to
	// MaxWeight. random ignores it, as twemproxy does.
	Weight int
	// Name is optional. twemproxy knows a named node by its name instead
	// of its address (see PlacementName), so that the node can move to a
	// new address without its keys moving; libmemcached has no names, and
	// libmemcached_ketama ignores it.
	Name string
}

// Config names the placement, as a nutcracker.yml pool does. The zero
// value is twemproxy's default: fnv1a_64 and ketama, no hash tag.
type Config struct {
	// Hash is one of Hashes(). Empty means fnv1a_64, twemproxy's default,
	// except under libmemcached_ketama, where it means md5, the hash
	// libmemcached's weighted ketama mode selects.
	Hash string
	// Distribution is one of Distributions(). Empty means ketama.
	Distribution string
	// HashTag is empty or two bytes, such as "{}": when a key holds the
	// first byte and, later, the second with something between them, only
	// what is between them is hashed, so that keys sharing the tag share a
	// node ("user:{42}:name" and "user:{42}:mail" hash "42").
	HashTag string
}

type distribution uint8

const (
	ketama distribution = iota
	modula
	random
	libmemcachedKetama
)

// distributionNames is indexed by distribution.
var distributionNames = []string{"ketama", "modula", "random", "libmemcached_ketama"}

// Distributions returns the distribution names New accepts: twemproxy's
// ketama, modula and random, and libmemcached_ketama, the weighted ketama
// ring of libmemcached (see the package documentation).
func Distributions() []string { return slices.Clone(distributionNames) }

// Ring places keys on nodes. It is immutable and safe for concurrent use;
// a change of membership is a new Ring.
type Ring struct {
	nodes  []Node
	config Config
	dist   distribution
	hash   hashFunc
	// tag holds the hash tag's two bytes when there is one.
	tag []byte

	// ketama: the points of the continuum in ascending order.
	// modula: ends[i] is the first slot after the slots of the i-th node
	// in twemproxy's order.
	points []uint32
	// owners[i] is the index in nodes of the node owning points[i].
	owners []int32
}

// New returns the ring placing keys on nodes as cfg says. The order of
// nodes does not matter to where keys go (twemproxy sorts its pools);
// Locate answers with indexes into nodes as given.
//
// Errors wrap ErrNoNodes, ErrBadNode, ErrDuplicateNode or ErrBadConfig.
func New(nodes []Node, cfg Config) (*Ring, error) {
	if len(nodes) == 0 {
		return nil, ErrNoNodes
	}
	if cfg.Distribution == "" {
		cfg.Distribution = distributionNames[ketama]
	}
	dist := slices.Index(distributionNames, cfg.Distribution)
	if dist < 0 {
		return nil, fmt.Errorf("%w: distribution %q, want one of %v", ErrBadConfig, cfg.Distribution, distributionNames)
	}
	if cfg.Hash == "" {
		cfg.Hash = "fnv1a_64"
		if distribution(dist) == libmemcachedKetama {
			cfg.Hash = "md5"
		}
	}
	hash, ok := lookupHash(cfg.Hash)
	if !ok {
		return nil, fmt.Errorf("%w: hash %q, want one of %v", ErrBadConfig, cfg.Hash, Hashes())
	}
	if cfg.HashTag != "" && len(cfg.HashTag) != 2 {
		return nil, fmt.Errorf("%w: hash tag %q, want two bytes such as \"{}\"", ErrBadConfig, cfg.HashTag)
	}
	if err := checkNodes(nodes); err != nil {
		return nil, err
	}

	r := &Ring{
		nodes:  slices.Clone(nodes),
		config: cfg,
		dist:   distribution(dist),
		hash:   hash,
	}
	if cfg.HashTag != "" {
		r.tag = []byte(cfg.HashTag)
	}
	switch r.dist {
	case ketama:
		r.points, r.owners = newContinuum(r.nodes, twemproxyOrder(r.nodes), twemproxyPointPrefix)
	case libmemcachedKetama:
		r.points, r.owners = newContinuum(r.nodes, listOrder(r.nodes), libmemcachedPointPrefix)
	case modula:
		r.points, r.owners = newModula(r.nodes)
	}
	return r, nil
}

// checkNodes validates every node and refuses repeated addresses and
// placement names.
func checkNodes(nodes []Node) error {
	seen := make(map[string]bool, 2*len(nodes))
	var total uint64
	for _, n := range nodes {
		host, port, err := net.SplitHostPort(n.Addr)
		if err != nil || host == "" {
			return fmt.Errorf("%w %q: address must be host:port", ErrBadNode, n.Addr)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return fmt.Errorf("%w %q: port must be a number from 1 to 65535", ErrBadNode, n.Addr)
		}
		if n.Weight < 1 || n.Weight > MaxWeight {
			return fmt.Errorf("%w %q: weight %d, must be from 1 to %d", ErrBadNode, n.Addr, n.Weight, MaxWeight)
		}
		name := PlacementName(n)
		if seen["addr "+n.Addr] || seen["name "+name] {
			return fmt.Errorf("%w: %q (placement name %q)", ErrDuplicateNode, n.Addr, name)
		}
		seen["addr "+n.Addr], seen["name "+name] = true, true
		total += uint64(n.Weight)
	}
	if total > math.MaxUint32 {
		return fmt.Errorf("%w: total weight %d overflows 32 bits", ErrBadNode, total)
	}
	return nil
}

// PlacementName is the name twemproxy knows a node by: its Name when it has
// one; otherwise its address as written, without the port when the port is
// memcached's default 11211 (libmemcached's convention, which twemproxy
// keeps). twemproxy sorts a pool's nodes by this name, and its ketama ring
// hashes it.
func PlacementName(n Node) string {
	if n.Name != "" {
		return n.Name
	}
	if i := strings.LastIndexByte(n.Addr, ':'); i >= 0 {
		if port, err := strconv.Atoi(n.Addr[i+1:]); err == nil && port == defaultPort {
			return n.Addr[:i]
		}
	}
	return n.Addr
}

// twemproxyOrder returns the indexes of nodes in the order twemproxy sorts
// a pool: by placement name, shorter names first, equal lengths byte by
// byte.
func twemproxyOrder(nodes []Node) []int {
	order := listOrder(nodes)
	slices.SortFunc(order, func(i, j int) int {
		a, b := PlacementName(nodes[i]), PlacementName(nodes[j])
		return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b))
	})
	return order
}

// listOrder returns the indexes of nodes in the order given.
func listOrder(nodes []Node) []int {
	order := make([]int, len(nodes))
	for i := range order {
		order[i] = i
	}
	return order
}

// newModula lays out twemproxy's modula slots: in twemproxy's order, each
// node owns Weight consecutive slots, and a key goes to slot hash mod the
// total weight.
func newModula(nodes []Node) (ends []uint32, owners []int32) {
	var total uint32
	for _, i := range twemproxyOrder(nodes) {
		total += uint32(nodes[i].Weight)
		ends = append(ends, total)
		owners = append(owners, int32(i))
	}
	return ends, owners
}

// Locate returns the index, in the nodes given to New, of the node that
// holds key. Under random it is a different random node on each call.
// Locate does not allocate.
func (r *Ring) Locate(key string) int {
	// twemproxy neither hashes nor draws for a pool of one.
	if len(r.nodes) == 1 {
		return 0
	}
	if r.dist == random {
		return rand.IntN(len(r.nodes))
	}
	h := r.keyHash(key)
	if r.dist == modula {
		slot := h % r.points[len(r.points)-1]
		i, _ := slices.BinarySearch(r.points, slot+1)
		return int(r.owners[i])
	}
	// The first point at or after h, wrapping around past the last.
	i, _ := slices.BinarySearch(r.points, h)
	if i == len(r.points) {
		i = 0
	}
	return int(r.owners[i])
}

// keyHash hashes the part of key that placement depends on. twemproxy
// hashes an empty key (or tag) to 0 without calling the hash function.
func (r *Ring) keyHash(key string) uint32 {
	if r.tag != nil {
		key = hashTagged(key, r.tag[0], r.tag[1])
	}
	if key == "" {
		return 0
	}
	return r.hash(key)
}

// Nodes returns a copy of the nodes given to New, in their order.
func (r *Ring) Nodes() []Node { return slices.Clone(r.nodes) }

// Config returns the configuration with its defaults filled in.
func (r *Ring) Config() Config { return r.config }
