package memcached

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/bradfitz/gomemcache/memcache"
)

// Membership.
//
// The servers a Tier talks to, and where each key goes, live in a cluster:
// an immutable snapshot that the Tier swaps atomically when discovery
// reports a new server list, or when auto-eject takes a node out of the
// placement or puts it back. An operation loads the snapshot once and
// works with it to the end, so it never sees half an update.
//
// Each server is a node (node.go) with its own connection pool, health
// and counters. Routing an operation to a node ourselves is what lets the
// Tier know which node failed, skip a node that is down without touching
// the network, and count per node. A node outlives snapshots: a
// new snapshot keeps the node objects of the addresses it still has, so
// their health and counters carry over.

// member is a server of the cluster and the node serving it.
type member struct {
	server Server
	node   *node
}

// cluster is one immutable snapshot of the membership.
type cluster struct {
	members []member         // in the order configured or discovered
	byAddr  map[string]*node // by the address string the selectors return
	// home places a key among all the members: where the key lives when
	// every node is up. nil when there are no members.
	home memcache.ServerSelector
	// live places a key among the members that were up when the snapshot
	// was built: home itself unless auto-eject left some out. nil when
	// none was up.
	live memcache.ServerSelector
	// ejected lists the nodes live leaves out, by key.
	ejected map[string]bool
}

// route says where an operation on a wire key goes.
type route struct {
	// home is the node the key belongs to; owner is the node the operation
	// is sent to. They differ when auto-eject has moved the key to a
	// substitute.
	home, owner *node
}

func (r route) substitute() bool { return r.home != r.owner }

// route returns the nodes for wire. It fails only when there is no node
// at all (ErrNoServers) or the selector fails or names an address the
// cluster does not know (a custom selector's fault).
func (c *cluster) route(wire string) (route, error) {
	if c.home == nil {
		return route{}, ErrNoServers
	}
	home, err := c.pick(c.home, wire)
	if err != nil {
		return route{}, err
	}
	r := route{home: home, owner: home}
	if len(c.ejected) == 0 {
		return r, nil
	}
	if c.live == nil {
		return r, nil // every node is out: the home node's down error says so
	}
	if r.owner, err = c.pick(c.live, wire); err != nil {
		return route{}, err
	}
	return r, nil
}

func (c *cluster) pick(sel memcache.ServerSelector, wire string) (*node, error) {
	addr, err := sel.PickServer(wire)
	if err != nil {
		return nil, err
	}
	n, ok := c.byAddr[addr.String()]
	if !ok {
		return nil, fmt.Errorf("the selector picked %s, which it did not list", addr)
	}
	return n, nil
}

// nodes returns the distinct nodes of the snapshot, in member order.
func (c *cluster) nodes() []*node {
	out := make([]*node, 0, len(c.members))
	for _, m := range c.members {
		if !slices.Contains(out, m.node) {
			out = append(out, m.node)
		}
	}
	return out
}

// servers returns the members' servers.
func (c *cluster) servers() []Server {
	out := make([]Server, len(c.members))
	for i, m := range c.members {
		out[i] = m.server
	}
	return out
}

// membership serialises the changes of a Tier's snapshot: the discovery
// poller and the health loop both replace it.
type membership struct {
	mu      sync.Mutex
	current atomic.Pointer[cluster]
}

// buildCluster returns a snapshot for servers (or for the custom selector,
// when the Tier has one), reusing the nodes of prev that keep their
// address, and the nodes of prev that are no longer needed. It resolves
// host names, so it may block on DNS; it runs in New and on the background
// goroutines, never on an operation's path.
func (t *Tier) buildCluster(servers []Server, prev *cluster) (*cluster, []*node, error) {
	c := &cluster{byAddr: make(map[string]*node)}
	reuse := func(addr net.Addr) *node {
		key := addr.String()
		if n, ok := c.byAddr[key]; ok {
			return n
		}
		var n *node
		if prev != nil {
			n = prev.byAddr[key]
		}
		if n == nil {
			n = t.newNode(addr)
		}
		c.byAddr[key] = n
		return n
	}
	switch {
	case t.cfg.selector != nil:
		c.home = t.cfg.selector
		err := t.cfg.selector.Each(func(addr net.Addr) error {
			n := reuse(addr)
			if !slices.ContainsFunc(c.members, func(m member) bool { return m.node == n }) {
				c.members = append(c.members, member{server: Server{Addr: n.key, Weight: 1}, node: n})
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	case len(servers) > 0:
		sel, err := t.newPlacement(servers)
		if err != nil {
			return nil, nil, err
		}
		c.home = sel
		listed := make(map[string]net.Addr)
		_ = sel.Each(func(addr net.Addr) error { listed[addr.String()] = addr; return nil })
		for _, s := range servers {
			addr, ok := listed[s.Addr]
			if !ok {
				key, err := resolvedKey(s)
				if err != nil {
					return nil, nil, err
				}
				addr, ok = listed[key]
			}
			if !ok {
				return nil, nil, fmt.Errorf("%w %q: the placement does not list it", ErrBadServer, s)
			}
			c.members = append(c.members, member{server: s, node: reuse(addr)})
		}
	}
	c.live = c.home
	if err := t.ejectDown(c); err != nil {
		return nil, nil, err
	}
	var gone []*node
	if prev != nil {
		for key, n := range prev.byAddr {
			if c.byAddr[key] != n {
				gone = append(gone, n)
			}
		}
	}
	return c, gone, nil
}

// newPlacement is the one place the Tier builds a selector from a server
// list: at New, on discovery updates, and for auto-eject.
func (t *Tier) newPlacement(servers []Server) (memcache.ServerSelector, error) {
	return newSelector(servers, t.cfg.hash, t.cfg.distribution, t.cfg.hashTag)
}

// resolvedKey returns the address string a selector gives for s: its
// host resolved, as gomemcache and this package's selectors resolve it.
func resolvedKey(s Server) (string, error) {
	tcp, err := net.ResolveTCPAddr("tcp", s.Addr)
	if err != nil {
		return "", fmt.Errorf("%w %q: %w", ErrBadServer, s.Addr, err)
	}
	return tcp.String(), nil
}

// ejectDown, with auto-eject on, rebuilds c's live placement without the
// nodes that are not up. It leaves c alone when every node is up.
func (t *Tier) ejectDown(c *cluster) error {
	if !t.cfg.autoEject || t.cfg.selector != nil {
		return nil
	}
	var up []Server
	ejected := make(map[string]bool)
	for _, m := range c.members {
		if m.node.isUp() {
			up = append(up, m.server)
		} else {
			ejected[m.node.key] = true
		}
	}
	if len(ejected) == 0 {
		return nil
	}
	c.ejected = ejected
	c.live = nil
	if len(up) == 0 {
		return nil
	}
	sel, err := t.newPlacement(up)
	if err != nil {
		return err
	}
	c.live = sel
	return nil
}

// setServers replaces the membership with servers. The nodes that leave
// are retired once the new snapshot is in place.
func (t *Tier) setServers(servers []Server) error {
	t.members.mu.Lock()
	defer t.members.mu.Unlock()
	next, gone, err := t.buildCluster(servers, t.members.current.Load())
	if err != nil {
		return err
	}
	t.members.current.Store(next)
	for _, n := range gone {
		t.retire(n)
	}
	return nil
}

// reeject rebuilds the live placement after nodes went down or came back,
// when auto-eject is on. It does nothing when the snapshot already leaves
// out exactly the nodes that are down.
func (t *Tier) reeject() error {
	t.members.mu.Lock()
	defer t.members.mu.Unlock()
	cur := t.members.current.Load()
	same := true
	for _, n := range cur.nodes() {
		if !n.isUp() != cur.ejected[n.key] {
			same = false
			break
		}
	}
	if same {
		return nil
	}
	next := &cluster{members: cur.members, byAddr: cur.byAddr, home: cur.home, live: cur.home}
	if err := t.ejectDown(next); err != nil {
		return err
	}
	t.members.current.Store(next)
	return nil
}
