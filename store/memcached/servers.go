package memcached

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tiercache/tiercache/store/memcached/ring"
)

// maxWeight bounds a server's weight (see ring.MaxWeight).
const maxWeight = ring.MaxWeight

// Server is one memcached node as written in a nutcracker.yml server list.
type Server struct {
	// Addr is host:port, ready to dial; an IPv6 host is bracketed.
	Addr string
	// Weight is the node's relative share of the keys; 1 when the string
	// gives none.
	Weight int
	// Name is the optional name after the address. twemproxy's ketama ring
	// hashes the name instead of the address when there is one, so that a
	// node can move to a new address without moving its keys.
	Name string
}

// PlacementName is the name twemproxy knows the server by: Name when there
// is one, otherwise the address, without the port when it is memcached's
// default 11211 (libmemcached's convention, which twemproxy keeps).
// twemproxy orders a pool's servers by this name before placing keys, and
// its ketama ring hashes it. See ring.PlacementName.
func (s Server) PlacementName() string { return ring.PlacementName(s.node()) }

// node returns s as package ring knows it.
func (s Server) node() ring.Node { return ring.Node{Addr: s.Addr, Weight: s.Weight, Name: s.Name} }

// String returns s in the form ParseServer reads: "host:port:weight[ name]".
func (s Server) String() string {
	out := s.Addr + ":" + strconv.Itoa(s.Weight)
	if s.Name != "" {
		out += " " + s.Name
	}
	return out
}

// ParseServer parses one server string in nutcracker.yml's form,
// "host:port[:weight] [name]", for example "127.0.0.1:11211:1",
// "10.0.0.2:11211:2 cache-b" or "[::1]:11211". The weight defaults to 1 and
// must be between 1 and 65535. Unix socket paths are not accepted.
//
// Errors wrap ErrBadServer and quote s.
func ParseServer(s string) (Server, error) {
	srv, reason := parseServer(s)
	if reason != "" {
		return Server{}, fmt.Errorf("%w %q: %s", ErrBadServer, s, reason)
	}
	return srv, nil
}

// parseServer does the work of ParseServer and returns why s is bad
// instead of an error, so that every failure is wrapped in one place.
func parseServer(s string) (Server, string) {
	fields := strings.Fields(s)
	switch {
	case len(fields) == 0:
		return Server{}, "empty"
	case len(fields) > 2:
		return Server{}, "want host:port[:weight] [name]"
	}
	var name string
	if len(fields) == 2 {
		name = fields[1]
		if !printable(name) {
			return Server{}, "name has control characters"
		}
	}

	host, rest, reason := splitHost(fields[0])
	if reason != "" {
		return Server{}, reason
	}
	portStr, weightStr, hasWeight := strings.Cut(rest, ":")
	port, err := strconv.ParseUint(portStr, 10, 16)
	// A leading zero would make twemproxy name the server differently
	// (it keeps the port as written), so it is refused.
	if err != nil || port == 0 || portStr[0] == '0' {
		return Server{}, "port must be a number from 1 to 65535, without leading zeros"
	}
	weight := uint64(1)
	if hasWeight {
		weight, err = strconv.ParseUint(weightStr, 10, 16)
		if err != nil || weight == 0 {
			return Server{}, fmt.Sprintf("weight must be a number from 1 to %d", maxWeight)
		}
	}
	return Server{
		Addr:   net.JoinHostPort(host, strconv.FormatUint(port, 10)),
		Weight: int(weight),
		Name:   name,
	}, ""
}

// splitHost splits addr into its host and whatever follows the colon after
// it. An IPv6 host must be bracketed, because its colons would otherwise be
// read as the port and weight separators.
func splitHost(addr string) (host, rest, reason string) {
	if strings.HasPrefix(addr, "[") {
		end := strings.IndexByte(addr, ']')
		if end < 0 {
			return "", "", "missing ']' after IPv6 address"
		}
		host = addr[1:end]
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() || ip.Is4In6() {
			return "", "", "not an IPv6 address between brackets"
		}
		rest, ok := strings.CutPrefix(addr[end+1:], ":")
		if !ok {
			return "", "", "missing port"
		}
		return host, rest, ""
	}
	host, rest, ok := strings.Cut(addr, ":")
	if !ok {
		return "", "", "missing port"
	}
	if !validHostname(host) {
		return "", "", "host must be a hostname or IP address (bracket IPv6)"
	}
	return host, rest, ""
}

// validHostname reports whether h is made of the characters hostnames and
// IPv4 addresses are written with.
func validHostname(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// parseServers parses a whole server list. It rejects an address or a
// placement name listed twice: gomemcache would silently give a repeated
// address double weight, and twemproxy refuses a repeated name, which would
// put two nodes on the same ring points.
func parseServers(list []string) ([]Server, error) {
	servers := make([]Server, 0, len(list))
	seen := make(map[string]bool, 2*len(list))
	for _, s := range list {
		srv, err := ParseServer(s)
		if err != nil {
			return nil, err
		}
		if seen["addr "+srv.Addr] {
			return nil, fmt.Errorf("%w %q: address listed twice", ErrBadServer, s)
		}
		if seen["name "+srv.PlacementName()] {
			return nil, fmt.Errorf("%w %q: name %q listed twice", ErrBadServer, s, srv.PlacementName())
		}
		seen["addr "+srv.Addr] = true
		seen["name "+srv.PlacementName()] = true
		servers = append(servers, srv)
	}
	return servers, nil
}
