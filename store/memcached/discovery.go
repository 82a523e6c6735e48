package memcached

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	mcwire "github.com/tiercache/tiercache/store/memcached/internal/wire"
)

// ElastiCache Auto Discovery.
//
// A memcached cluster on ElastiCache has a configuration endpoint that
// answers "config get cluster" (engines from 1.4.14) or, on older ones,
// "get AmazonElastiCache:cluster" with the cluster's node list:
//
//	CONFIG cluster 0 <length>\r\n
//	<version>\n
//	<host>|<ip>|<port> <host>|<ip>|<port> ...\n
//	\r\n
//	END\r\n
//
// (the old form starts "VALUE AmazonElastiCache:cluster 0 <length>"). The
// version grows by one whenever the list changes. The Tier polls the
// endpoint, dialling it by name each time so that a change of the name's
// address is followed, and puts a list with a newer version in place
// atomically. An older or identical version is ignored, and a failed query
// or a reply that does not parse leaves the last good list serving.

const (
	// maxConfigLen bounds the configuration reply a Tier accepts.
	maxConfigLen = 1 << 20

	// firstDiscoveryRetry is how often the first discovery is retried, when
	// it failed and WithDiscoveryRetry is on, if the interval is longer.
	firstDiscoveryRetry = time.Second

	// minDiscoveryTimeout bounds each network step of a discovery query
	// from below; WithTimeout applies when it is longer.
	minDiscoveryTimeout = time.Second
)

type discoveryConfig struct {
	endpoint string
	interval time.Duration
	retry    bool
}

// WithDiscovery finds the servers through an ElastiCache configuration
// endpoint, "host:port", asked every interval for the current node list.
// The servers passed to New may then be empty; any given are used until
// the first list arrives. New asks the endpoint once and fails with
// ErrDiscovery when it cannot get a list, unless WithDiscoveryRetry is on.
// Discovered nodes have weight 1 and no name: keys are placed by
// "ip:port", or "host:port" for a node listed without an IP. AWS suggests
// an interval of a minute. It cannot be combined with WithSelector.
func WithDiscovery(endpoint string, interval time.Duration) Option {
	return func(c *config) error {
		host, port, err := net.SplitHostPort(endpoint)
		if err != nil || host == "" {
			return fmt.Errorf("%w: discovery endpoint %q, want host:port", ErrInvalidOption, endpoint)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return fmt.Errorf("%w: discovery endpoint %q: bad port", ErrInvalidOption, endpoint)
		}
		if interval <= 0 {
			return fmt.Errorf("%w: discovery interval %v, must be positive", ErrInvalidOption, interval)
		}
		if c.discovery == nil {
			c.discovery = new(discoveryConfig)
		}
		c.discovery.endpoint = endpoint
		c.discovery.interval = interval
		return nil
	}
}

// WithDiscoveryRetry, when on, makes New succeed even when the first
// discovery fails: the Tier starts with the servers given to New (often
// none, so that every operation returns ErrNoServers at once, a miss to
// the chain) and keeps asking, every second or every interval if shorter,
// until a list arrives. It needs WithDiscovery.
func WithDiscoveryRetry(on bool) Option {
	return func(c *config) error {
		if c.discovery == nil {
			c.discovery = new(discoveryConfig)
		}
		c.discovery.retry = on
		return nil
	}
}

// clusterConfig is a parsed configuration reply.
type clusterConfig struct {
	version int64
	nodes   []configNode
}

// configNode is one "host|ip|port" entry.
type configNode struct {
	host, ip string
	port     uint16
}

// server returns the node as a Server: by IP when there is one, otherwise
// by host name.
func (n configNode) server() Server {
	host := n.ip
	if host == "" {
		host = n.host
	}
	return Server{Addr: net.JoinHostPort(host, strconv.Itoa(int(n.port))), Weight: 1}
}

// servers returns the nodes as Servers.
func (c clusterConfig) servers() []Server {
	out := make([]Server, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.server()
	}
	return out
}

// parseClusterConfig parses the data of a configuration reply: a version
// line and a line of space-separated "host|ip|port" entries, each ending
// in "\n" (or "\r\n"). It refuses anything else, an empty list, an entry
// with neither host nor IP, and an address listed twice.
func parseClusterConfig(data []byte) (clusterConfig, error) {
	text := strings.TrimRight(string(data), "\r\n")
	lines := strings.Split(text, "\n")
	if len(lines) != 2 {
		return clusterConfig{}, fmt.Errorf("want a version line and a node line, got %d lines", len(lines))
	}
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\r")
	}
	version, err := strconv.ParseInt(lines[0], 10, 64)
	if err != nil || version < 0 {
		return clusterConfig{}, fmt.Errorf("version %.40q is not a number", lines[0])
	}
	cfg := clusterConfig{version: version}
	seen := make(map[string]bool)
	for _, entry := range strings.Split(lines[1], " ") {
		if entry == "" {
			continue
		}
		n, err := parseConfigNode(entry)
		if err != nil {
			return clusterConfig{}, err
		}
		addr := n.server().Addr
		if seen[addr] {
			return clusterConfig{}, fmt.Errorf("node %s listed twice", addr)
		}
		seen[addr] = true
		cfg.nodes = append(cfg.nodes, n)
	}
	if len(cfg.nodes) == 0 {
		return clusterConfig{}, errors.New("no nodes")
	}
	return cfg, nil
}

func parseConfigNode(entry string) (configNode, error) {
	fields := strings.Split(entry, "|")
	if len(fields) != 3 {
		return configNode{}, fmt.Errorf("node %.80q: want host|ip|port", entry)
	}
	n := configNode{host: fields[0], ip: fields[1]}
	port, err := strconv.ParseUint(fields[2], 10, 16)
	if err != nil || port == 0 || fields[2][0] == '0' {
		return configNode{}, fmt.Errorf("node %.80q: bad port", entry)
	}
	n.port = uint16(port)
	switch {
	case n.ip != "":
		ip, err := netip.ParseAddr(n.ip)
		if err != nil || ip.Zone() != "" {
			return configNode{}, fmt.Errorf("node %.80q: bad IP address", entry)
		}
		n.ip = ip.String() // one spelling per address, for the duplicate check
	case n.host == "":
		return configNode{}, fmt.Errorf("node %.80q: neither host nor IP", entry)
	}
	if n.host != "" && !validHostname(n.host) {
		return configNode{}, fmt.Errorf("node %.80q: bad host name", entry)
	}
	if _, reason := parseServer(n.server().Addr); reason != "" {
		return configNode{}, fmt.Errorf("node %.80q: %s", entry, reason)
	}
	return n, nil
}

// readConfigReply reads the reply to "config get cluster" or "get
// AmazonElastiCache:cluster" and returns its data.
func readConfigReply(r *mcwire.Reader) ([]byte, error) {
	rep, err := r.NextHeader()
	if err != nil {
		return nil, err
	}
	switch {
	case rep.Code == "ERROR":
		return nil, errUnknownCommand
	case rep.Code == "END":
		return nil, errors.New("the endpoint has no cluster configuration")
	case rep.Code == "CONFIG" && rep.Key == "cluster", rep.Code == "VALUE" && rep.Key == "AmazonElastiCache:cluster":
	default:
		return nil, fmt.Errorf("unexpected reply %s %.80q", rep.Code, rep.Key)
	}
	if rep.Size > maxConfigLen {
		return nil, fmt.Errorf("configuration of %d bytes, more than %d", rep.Size, maxConfigLen)
	}
	data := make([]byte, rep.Size)
	if err := r.ReadFull(data); err != nil {
		return nil, err
	}
	// The data block ends with "\r\n" and the reply with "END\r\n".
	// Whether the announced length counts the node line's own "\n" is
	// not something every server agrees on, so blank lines are allowed
	// before END; anything else means the length was wrong.
	for range 3 {
		line, err := r.RawLine()
		if err != nil {
			return nil, fmt.Errorf("configuration not followed by END: %w", err)
		}
		switch strings.TrimRight(string(line), "\r\n") {
		case "":
			continue
		case "END":
			return data, nil
		default:
			return nil, fmt.Errorf("configuration longer than announced (%.40q)", line)
		}
	}
	return nil, errors.New("configuration not followed by END")
}

// queryCluster asks the endpoint for the cluster configuration, falling
// back to the old engines' key when it does not know "config get cluster".
// The endpoint is dialled by name for each query, on a pool of one
// connection that lives for the query.
func (t *Tier) queryCluster(ctx context.Context) (clusterConfig, error) {
	p := mcwire.NewPool(mcwire.Config{Network: "tcp", Addr: t.cfg.discovery.endpoint, Conns: 1, Depth: 1,
		Timeout: max(t.cfg.timeout, minDiscoveryTimeout)})
	defer p.Close()
	ask := func(cmd string) ([]byte, error) {
		var data []byte
		err := p.Do(ctx, &mcwire.Request{Buf: []byte(cmd), Probe: true, Read: func(r *mcwire.Reader) error {
			var err error
			data, err = readConfigReply(r)
			if errors.Is(err, errUnknownCommand) {
				return nil // an answer: the connection is in step
			}
			if err == nil && data == nil {
				data = []byte{}
			}
			return err
		}})
		switch {
		case err != nil:
			return nil, err // Read may still run: data is not ours
		case data == nil:
			return nil, errUnknownCommand
		}
		return data, nil
	}
	data, err := ask("config get cluster\r\n")
	if errors.Is(err, errUnknownCommand) {
		data, err = ask("get AmazonElastiCache:cluster\r\n")
	}
	if err != nil {
		return clusterConfig{}, err
	}
	return parseClusterConfig(data)
}

// discover asks the endpoint once and puts a newer list in place. Only
// New and then the discovery goroutine call it, never both at once.
func (t *Tier) discover(ctx context.Context) error {
	t.stats.discoveryPolls.Add(1)
	err := t.discoverOnce(ctx)
	if err != nil {
		t.stats.discoveryErrors.Add(1)
		return fmt.Errorf("%w: %s: %w", ErrDiscovery, t.cfg.discovery.endpoint, err)
	}
	return nil
}

func (t *Tier) discoverOnce(ctx context.Context) error {
	cfg, err := t.queryCluster(ctx)
	if err != nil {
		return err
	}
	if cfg.version <= t.stats.discoveryVersion.Load() {
		return nil // the list in place is as new
	}
	if err := t.setServers(cfg.servers()); err != nil {
		return err
	}
	t.stats.discoveryVersion.Store(cfg.version)
	t.stats.discoveryUpdates.Add(1)
	return nil
}

// discoveryLoop is the Tier's discovery goroutine. Close stops it.
func (t *Tier) discoveryLoop() {
	defer t.bg.Done()
	timer := time.NewTimer(t.discoveryWait())
	defer timer.Stop()
	for {
		select {
		case <-t.bgCtx.Done():
			return
		case <-timer.C:
		}
		t.guard(func() { _ = t.discover(t.bgCtx) })
		timer.Reset(t.discoveryWait())
	}
}

// discoveryWait is the time until the next poll: the interval, or less
// while no list has arrived yet.
func (t *Tier) discoveryWait() time.Duration {
	if t.stats.discoveryVersion.Load() < 0 {
		return min(t.cfg.discovery.interval, firstDiscoveryRetry)
	}
	return t.cfg.discovery.interval
}
