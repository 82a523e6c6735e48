package ring

import "errors"

var (
	// ErrNoNodes is returned by New for an empty node list.
	ErrNoNodes = errors.New("ring: no nodes")

	// ErrBadNode is returned by New for a node whose address is not
	// host:port with a port from 1 to 65535, or whose weight is not
	// between 1 and MaxWeight, and by NewSelector for an address that does
	// not resolve. The error names the node.
	ErrBadNode = errors.New("ring: bad node")

	// ErrDuplicateNode is returned by New when two nodes share an address
	// or a placement name (see PlacementName). twemproxy refuses a pool
	// with a repeated name too: both nodes would claim the same points.
	ErrDuplicateNode = errors.New("ring: duplicate node")

	// ErrBadConfig is returned by New for a hash or distribution name it
	// does not know, or a hash tag that is not two bytes.
	ErrBadConfig = errors.New("ring: bad config")
)
