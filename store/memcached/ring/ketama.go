package ring

import (
	"crypto/md5"
	"encoding/binary"
	"math"
	"net"
	"slices"
	"strconv"
)

// The ketama continuum, as twemproxy 0.5 builds it (and libmemcached in
// its weighted mode, from which twemproxy took it):
//
//   - each node gets 160 points scaled by its share of the total weight,
//     floor(share * 160/4 * nodes) * 4, computed in single precision;
//   - the points come four at a time from the MD5 digest of a point name,
//     "<prefix>-<i>" for i from 0, each point a little-endian quarter of
//     the digest;
//   - the points are sorted, ties keeping the order they were made in
//     (nodes in twemproxy's order, or libmemcached's list order), as the
//     merge sort behind glibc's qsort keeps it;
//   - a key goes to the node of the first point at or after its hash,
//     wrapping around to the first point.

const (
	pointsPerNode   = 160
	pointsPerDigest = 4
	// maxPointName is the longest point name twemproxy hashes: it formats
	// names into a 273-byte buffer and truncates what does not fit.
	maxPointName = 272
)

// newContinuum returns the sorted points of nodes and, for each, the index
// of its node. order is the order in which the nodes' points are made,
// which decides ties; prefix names a node's points.
func newContinuum(nodes []Node, order []int, prefix func(Node) (string, int)) (points []uint32, owners []int32) {
	var total int
	for _, n := range nodes {
		total += n.Weight
	}
	type point struct {
		value uint32
		owner int32
	}
	var all []point
	for _, i := range order {
		name, limit := prefix(nodes[i])
		count := ketamaPointCount(nodes[i].Weight, total, len(nodes))
		for p := range count / pointsPerDigest {
			pointName := name + "-" + strconv.Itoa(p)
			if len(pointName) > limit {
				pointName = pointName[:limit]
			}
			digest := md5.Sum([]byte(pointName))
			for q := range pointsPerDigest {
				all = append(all, point{binary.LittleEndian.Uint32(digest[4*q:]), int32(i)})
			}
		}
	}
	slices.SortStableFunc(all, func(a, b point) int {
		switch {
		case a.value < b.value:
			return -1
		case a.value > b.value:
			return 1
		}
		return 0
	})
	points = make([]uint32, len(all))
	owners = make([]int32, len(all))
	for i, p := range all {
		points[i], owners[i] = p.value, p.owner
	}
	return points, owners
}

// ketamaPointCount is how many points a node of the given weight gets,
// computed as twemproxy and libmemcached compute it, in C floats:
//
//	pct = (float)weight / (float)total
//	floorf((float)(pct * 160 / 4 * (float)nodes + 0.0000000001)) * 4
//
// Every step is rounded to float32 as C rounds it; a weight whose share
// comes out a hair under a whole number of digests loses those four
// points, as it does in the proxy.
func ketamaPointCount(weight, total, nodes int) int {
	pct := float32(weight) / float32(total)
	x := float32(pct * pointsPerNode)
	x = float32(x / pointsPerDigest)
	x = float32(x * float32(nodes))
	x = float32(float64(x) + 0.0000000001)
	return int(math.Floor(float64(x))) * pointsPerDigest
}

// twemproxyPointPrefix names a node's points as twemproxy does: its
// placement name, the whole point name cut at 272 bytes.
func twemproxyPointPrefix(n Node) (string, int) { return PlacementName(n), maxPointName }

// libmemcachedPointPrefix names a node's points as libmemcached does: the
// host (an IPv6 address without brackets), followed by ":port" unless the
// port is 11211. Node names play no part.
func libmemcachedPointPrefix(n Node) (string, int) {
	host, port, _ := net.SplitHostPort(n.Addr) // checked by New
	if p, _ := strconv.Atoi(port); p != defaultPort {
		host += ":" + strconv.Itoa(p)
	}
	return host, math.MaxInt
}
