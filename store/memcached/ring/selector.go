package ring

import (
	"fmt"
	"net"

	"github.com/bradfitz/gomemcache/memcache"
)

// Selector is a gomemcache ServerSelector that places keys with a Ring:
// pass it to memcache.NewFromSelector. It is immutable and safe for
// concurrent use; to change the nodes, build a new Ring and Selector.
type Selector struct {
	ring  *Ring
	addrs []net.Addr // indexed like r.Nodes()
}

var _ memcache.ServerSelector = (*Selector)(nil)

// NewSelector resolves the address of each of r's nodes once, as
// gomemcache's ServerList does, and returns the selector. An address that
// does not resolve is an error wrapping ErrBadNode.
func NewSelector(r *Ring) (*Selector, error) {
	s := &Selector{ring: r, addrs: make([]net.Addr, len(r.nodes))}
	for i, n := range r.nodes {
		tcp, err := net.ResolveTCPAddr("tcp", n.Addr)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrBadNode, n.Addr, err)
		}
		s.addrs[i] = staticAddr{network: tcp.Network(), str: tcp.String()}
	}
	return s, nil
}

// PickServer implements memcache.ServerSelector.
func (s *Selector) PickServer(key string) (net.Addr, error) {
	return s.addrs[s.ring.Locate(key)], nil
}

// Each implements memcache.ServerSelector, visiting the nodes in the order
// given to New.
func (s *Selector) Each(f func(net.Addr) error) error {
	for _, a := range s.addrs {
		if err := f(a); err != nil {
			return err
		}
	}
	return nil
}

// staticAddr is a resolved address whose String is computed once:
// gomemcache calls it on every operation to find the connection pool.
type staticAddr struct{ network, str string }

func (a staticAddr) Network() string { return a.network }
func (a staticAddr) String() string  { return a.str }
