package memcached

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/internal/testenv"
	mcwire "github.com/tiercache/tiercache/store/memcached/internal/wire"
	"github.com/tiercache/tiercache/tier"
)

func TestParseClusterConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		data    string
		version int64
		servers []string // Server.Addr of each node; nil when the data is refused
	}{
		{"two nodes", "12\nmc.0001.cache.amazonaws.com|10.82.235.120|11211 mc.0002.cache.amazonaws.com|10.80.249.27|11211\n",
			12, []string{"10.82.235.120:11211", "10.80.249.27:11211"}},
		{"no trailing newline", "1\na|10.0.0.1|11211", 1, []string{"10.0.0.1:11211"}},
		{"CRLF line ends", "3\r\na|10.0.0.1|11211\r\n", 3, []string{"10.0.0.1:11211"}},
		{"host name when no IP", "2\nlocalhost||11212 b|10.0.0.2|11211\n", 2, []string{"localhost:11212", "10.0.0.2:11211"}},
		{"IP without host name", "2\n|10.0.0.2|11211\n", 2, []string{"10.0.0.2:11211"}},
		{"IPv6", "5\nh|2001:db8::1|11211\n", 5, []string{"[2001:db8::1]:11211"}},
		{"IPv6 spelt differently", "5\nh|2001:DB8:0::1|11211\n", 5, []string{"[2001:db8::1]:11211"}},
		{"extra spaces", "7\n a|10.0.0.1|1  b|10.0.0.2|2 \n", 7, []string{"10.0.0.1:1", "10.0.0.2:2"}},
		{"version 0", "0\na|10.0.0.1|11211\n", 0, []string{"10.0.0.1:11211"}},

		{"empty", "", 0, nil},
		{"version only", "12\n", 0, nil},
		{"no nodes", "12\n\n", 0, nil},
		{"spaces only", "12\n   \n", 0, nil},
		{"version not a number", "v12\na|10.0.0.1|11211\n", 0, nil},
		{"negative version", "-1\na|10.0.0.1|11211\n", 0, nil},
		{"version overflows", "99999999999999999999\na|10.0.0.1|11211\n", 0, nil},
		{"third line", "1\na|10.0.0.1|11211\nEND\n", 0, nil},
		{"two fields", "1\na|11211\n", 0, nil},
		{"four fields", "1\na|10.0.0.1|11211|x\n", 0, nil},
		{"no host, no IP", "1\n||11211\n", 0, nil},
		{"port 0", "1\na|10.0.0.1|0\n", 0, nil},
		{"port too large", "1\na|10.0.0.1|65536\n", 0, nil},
		{"port with leading zero", "1\na|10.0.0.1|011211\n", 0, nil},
		{"port missing", "1\na|10.0.0.1|\n", 0, nil},
		{"bad IP", "1\na|10.0.0.300|11211\n", 0, nil},
		{"IP with zone", "1\na|fe80::1%eth0|11211\n", 0, nil},
		{"IPv4 in IPv6 form", "1\na|::ffff:10.0.0.1|11211\n", 0, nil},
		{"bad host name", "1\na/b||11211\n", 0, nil},
		{"listed twice", "1\na|10.0.0.1|11211 b|10.0.0.1|11211\n", 0, nil},
		{"IPv6 listed twice", "1\na|2001:db8::1|11211 b|2001:DB8::1|11211\n", 0, nil},
		{"tab separated", "1\na|10.0.0.1|1\tb|10.0.0.2|2\n", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseClusterConfig([]byte(tt.data))
			if tt.servers == nil {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", cfg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range cfg.servers() {
				got = append(got, s.Addr)
			}
			if cfg.version != tt.version || !slices.Equal(got, tt.servers) {
				t.Fatalf("version %d, servers %v; want %d, %v", cfg.version, got, tt.version, tt.servers)
			}
		})
	}
}

func TestReadConfigReply(t *testing.T) {
	t.Parallel()
	const data = "12\na|10.0.0.1|11211\n"
	tests := []struct {
		name  string
		reply string
		want  string // the data; "" when the reply is refused
	}{
		{"config", fmt.Sprintf("CONFIG cluster 0 %d\r\n%s\r\nEND\r\n", len(data), data), data},
		{"old engine", fmt.Sprintf("VALUE AmazonElastiCache:cluster 0 %d\r\n%s\r\nEND\r\n", len(data), data), data},
		{"length without the last newline", fmt.Sprintf("CONFIG cluster 0 %d\r\n%s\r\nEND\r\n", len(data)-1, data), data[:len(data)-1]},
		{"length with the CRLF", fmt.Sprintf("CONFIG cluster 0 %d\r\n%s\r\nEND\r\n", len(data)+2, data), data + "\r\n"},

		{"unknown command", "ERROR\r\n", ""},
		{"no configuration", "END\r\n", ""},
		{"garbage", "HELLO\r\n", ""},
		{"other key", fmt.Sprintf("VALUE other 0 %d\r\n%s\r\nEND\r\n", len(data), data), ""},
		{"length too short", fmt.Sprintf("CONFIG cluster 0 %d\r\n%s\r\nEND\r\n", 5, data), ""},
		{"length too long", fmt.Sprintf("CONFIG cluster 0 %d\r\n%s\r\nEND\r\n", len(data)+20, data), ""},
		{"length not a number", "CONFIG cluster 0 x\r\n" + data + "\r\nEND\r\n", ""},
		{"huge length", "CONFIG cluster 0 4000000000\r\n", ""},
		{"bad flags", fmt.Sprintf("CONFIG cluster x %d\r\n%s\r\nEND\r\n", len(data), data), ""},
		{"no END", fmt.Sprintf("CONFIG cluster 0 %d\r\n%s\r\n", len(data), data), ""},
		{"cut short", "CONFIG cluster 0 40\r\n12\n", ""},
		{"header without CRLF", "CONFIG cluster 0 3\n12\n\r\nEND\r\n", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := readConfigReply(mcwire.NewReader(strings.NewReader(tt.reply)))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("read %q, want an error", got)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("read %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// formatClusterConfig writes cfg as a configuration endpoint sends it.
func formatClusterConfig(cfg clusterConfig) string {
	var nodes []string
	for _, n := range cfg.nodes {
		nodes = append(nodes, n.host+"|"+n.ip+"|"+strconv.Itoa(int(n.port)))
	}
	return strconv.FormatInt(cfg.version, 10) + "\n" + strings.Join(nodes, " ") + "\n"
}

func FuzzParseClusterConfig(f *testing.F) {
	f.Add([]byte("12\nmc.0001.cache.amazonaws.com|10.82.235.120|11211 mc.0002.cache.amazonaws.com|10.80.249.27|11211\n"))
	f.Add([]byte("2\nlocalhost||11212 |2001:db8::1|1\r\n"))
	f.Add([]byte("1\na|10.0.0.1|11211 a|10.0.0.1|11211\n"))
	f.Add([]byte("1\n||0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseClusterConfig(data)
		if err != nil {
			return
		}
		if len(cfg.nodes) == 0 || cfg.version < 0 {
			t.Fatalf("parsed %q as %+v", data, cfg)
		}
		for _, s := range cfg.servers() {
			if _, err := ParseServer(s.Addr); err != nil {
				t.Fatalf("parsed %q into a bad server: %v", data, err)
			}
		}
		again, err := parseClusterConfig([]byte(formatClusterConfig(cfg)))
		if err != nil || !reflect.DeepEqual(again, cfg) {
			t.Fatalf("%q: parsed %+v, reparsed %+v, %v", data, cfg, again, err)
		}
	})
}

func FuzzReadConfigReply(f *testing.F) {
	f.Add([]byte("CONFIG cluster 0 20\r\n12\na|10.0.0.1|11211\n\r\nEND\r\n"))
	f.Add([]byte("VALUE AmazonElastiCache:cluster 0 19\r\n12\na|10.0.0.1|11211\r\nEND\r\n"))
	f.Add([]byte("ERROR\r\n"))
	f.Fuzz(func(t *testing.T, reply []byte) {
		data, err := readConfigReply(mcwire.NewReader(strings.NewReader(string(reply))))
		if err == nil && len(data) > len(reply) {
			t.Fatalf("read %d bytes of data from a %d-byte reply", len(data), len(reply))
		}
	})
}

// configServer is a scripted ElastiCache configuration endpoint. It answers
// "config get cluster" with whatever the test set last, or, in old-engine
// mode, ERROR to that and the configuration to "get
// AmazonElastiCache:cluster".
type configServer struct {
	addr string

	mu        sync.Mutex
	reply     string // the data, or a raw reply when raw is set
	raw       bool
	oldEngine bool
	down      bool // close every connection at once
	asked     int
}

func startConfigServer(t *testing.T) *configServer {
	t.Helper()
	cs := &configServer{}
	fs := startFakeServer(t, func(c net.Conn, r *bufio.Reader) {
		readLines(r, func(line string) {
			cs.mu.Lock()
			reply, raw, old, down := cs.reply, cs.raw, cs.oldEngine, cs.down
			cs.asked++
			cs.mu.Unlock()
			if down {
				c.Close()
				return
			}
			switch {
			case line == "config get cluster" && old:
				io.WriteString(c, "ERROR\r\n")
			case line == "config get cluster" && raw:
				io.WriteString(c, reply)
			case line == "config get cluster":
				fmt.Fprintf(c, "CONFIG cluster 0 %d\r\n%s\r\nEND\r\n", len(reply), reply)
			case line == "get AmazonElastiCache:cluster" && old:
				fmt.Fprintf(c, "VALUE AmazonElastiCache:cluster 0 %d\r\n%s\r\nEND\r\n", len(reply), reply)
			default:
				io.WriteString(c, "ERROR\r\n")
			}
		})
	})
	cs.addr = fs.addr
	return cs
}

// set makes the endpoint report version with nodes, each "host|ip|port".
func (cs *configServer) set(version int, nodes ...string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.reply = strconv.Itoa(version) + "\n" + strings.Join(nodes, " ") + "\n"
	cs.raw = false
}

// setRaw makes the endpoint answer with reply, whatever it is.
func (cs *configServer) setRaw(reply string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.reply, cs.raw = reply, true
}

func (cs *configServer) setDown(down bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.down = down
}

// entry returns the configuration entry of a memcached: "host|ip|port".
func entry(host, addr string) string {
	ip, port, _ := net.SplitHostPort(addr)
	return host + "|" + ip + "|" + port
}

// serverAddrs returns the addresses of the Tier's servers.
func serverAddrs(tr *Tier) []string {
	var out []string
	for _, s := range tr.Servers() {
		out = append(out, s.Addr)
	}
	return out
}

// waitPolls waits until the Tier has polled the endpoint n more times.
func waitPolls(t *testing.T, tr *Tier, n int64) {
	t.Helper()
	start := tr.Counters()["discovery_polls"]
	waitFor(t, fmt.Sprintf("%d discovery polls", n), func() bool { return tr.Counters()["discovery_polls"] >= start+n })
}

func waitVersion(t *testing.T, tr *Tier, version int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("discovery version %d", version), func() bool { return tr.Counters()["discovery_version"] == version })
}

// roundTrip checks that keys placed on addr can be written and read back.
func roundTrip(t *testing.T, tr *Tier, addr string) {
	t.Helper()
	for _, k := range keysOn(t, tr, addr, 3) {
		mustSet(t, tr, k)
		mustGet(t, tr, k)
	}
}

// TestDiscovery follows a cluster through the changes ElastiCache makes to
// it, with real memcached nodes behind a scripted configuration endpoint.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	a, b, c := testenv.Memcached(t), testenv.Memcached(t), testenv.Memcached(t)
	_, bPort, _ := net.SplitHostPort(b.Addr)
	bPortNum, _ := strconv.Atoi(bPort)
	cs := startConfigServer(t)
	cs.set(1, entry("node-a", a.Addr), entry("node-b", b.Addr))

	tr, err := New(nil, WithDiscovery(cs.addr, 5*time.Millisecond), WithTimeout(time.Second)) // generous: not a test of timeouts
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	want := func(t *testing.T, addrs ...string) {
		t.Helper()
		if got := serverAddrs(tr); !slices.Equal(got, addrs) {
			t.Fatalf("servers %v, want %v", got, addrs)
		}
		for _, addr := range addrs {
			roundTrip(t, tr, addr)
		}
	}
	want(t, a.Addr, b.Addr)
	if cnt := tr.Counters(); cnt["discovery_version"] != 1 || cnt["discovery_updates"] != 1 || cnt["discovery_errors"] != 0 {
		t.Fatalf("counters after the first discovery: %v", cnt)
	}

	t.Run("node added", func(t *testing.T) {
		cs.set(2, entry("node-a", a.Addr), entry("node-b", b.Addr), entry("node-c", c.Addr))
		waitVersion(t, tr, 2)
		want(t, a.Addr, b.Addr, c.Addr)
	})
	t.Run("older and identical versions ignored", func(t *testing.T) {
		cs.set(1, entry("node-a", a.Addr))
		waitPolls(t, tr, 3)
		cs.set(2, entry("node-a", a.Addr))
		waitPolls(t, tr, 3)
		want(t, a.Addr, b.Addr, c.Addr)
		if n := tr.Counters()["discovery_updates"]; n != 2 {
			t.Fatalf("discovery_updates = %d, want 2", n)
		}
	})
	t.Run("malformed replies ignored", func(t *testing.T) {
		errs := tr.Counters()["discovery_errors"]
		for _, reply := range []string{
			"CONFIG cluster 0 5\r\n3\nxyz\r\nEND\r\n",            // bad node
			"CONFIG cluster 0 2\r\n3\n\r\nEND\r\n",               // no nodes
			"CONFIG cluster 0 3\r\n3\na|10.0.0.1|1\n\r\nEND\r\n", // length wrong
			"SERVER_ERROR busy\r\n",
		} {
			cs.setRaw(reply)
			waitPolls(t, tr, 2)
		}
		want(t, a.Addr, b.Addr, c.Addr)
		// Each reply was read by at least one whole poll.
		if n := tr.Counters()["discovery_errors"]; n < errs+4 {
			t.Fatalf("discovery_errors went from %d to %d, want 4 more", errs, n)
		}
	})
	t.Run("node removed", func(t *testing.T) {
		cs.set(3, entry("node-b", b.Addr), entry("node-c", c.Addr))
		waitVersion(t, tr, 3)
		want(t, b.Addr, c.Addr)
		if n := openConnsTo(tr, a.Addr); n != 0 {
			t.Fatalf("%d connections still open to the removed node", n)
		}
	})
	t.Run("node replaced with a new IP", func(t *testing.T) {
		// ElastiCache replaces a node with a new host on the same port.
		b2 := testenv.Memcached(t, testenv.WithLoopbackPort(bPortNum))
		b.Kill()
		cs.set(4, entry("node-b", b2.Addr), entry("node-c", c.Addr))
		waitVersion(t, tr, 4)
		want(t, b2.Addr, c.Addr)
		if ns := nodeStats(t, tr, b2.Addr); ns.Counters["hits"] == 0 || ns.Counters["errors"] != 0 {
			t.Fatalf("replacement node stats %v, want hits and no errors", ns.Counters)
		}
	})
	t.Run("host name used when there is no IP", func(t *testing.T) {
		_, cPort, _ := net.SplitHostPort(c.Addr)
		cs.set(5, "localhost||"+cPort)
		waitVersion(t, tr, 5)
		if got := serverAddrs(tr); !slices.Equal(got, []string{"localhost:" + cPort}) {
			t.Fatalf("servers %v, want localhost:%s", got, cPort)
		}
		roundTrip(t, tr, c.Addr) // localhost resolves to 127.0.0.1
	})
	t.Run("endpoint down", func(t *testing.T) {
		cs.setDown(true)
		errs := tr.Counters()["discovery_errors"]
		waitPolls(t, tr, 3)
		if n := tr.Counters()["discovery_errors"]; n < errs+2 {
			t.Fatalf("discovery_errors went from %d to %d, want 2 more", errs, n)
		}
		roundTrip(t, tr, c.Addr)
		cs.setDown(false)
		_, aPort, _ := net.SplitHostPort(a.Addr)
		cs.set(6, "|127.0.0.1|"+aPort)
		waitVersion(t, tr, 6)
		want(t, a.Addr)
	})
}

// TestDiscoveryOldEngine covers an engine older than 1.4.14, which answers
// ERROR to "config get cluster" and keeps the list under a key.
func TestDiscoveryOldEngine(t *testing.T) {
	t.Parallel()
	mc := testenv.Memcached(t)
	cs := startConfigServer(t)
	cs.mu.Lock()
	cs.oldEngine = true
	cs.mu.Unlock()
	cs.set(7, entry("node", mc.Addr))
	tr, err := New(nil, WithDiscovery(cs.addr, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if got := serverAddrs(tr); !slices.Equal(got, []string{mc.Addr}) || tr.Counters()["discovery_version"] != 7 {
		t.Fatalf("servers %v, counters %v", got, tr.Counters())
	}
	roundTrip(t, tr, mc.Addr)
}

// TestDiscoveryFirstFails covers an endpoint that does not answer when
// New runs: New fails, unless asked to retry, and then every operation is
// a fast miss until the first list arrives.
func TestDiscoveryFirstFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc := testenv.Memcached(t)
	cs := startConfigServer(t)
	cs.setDown(true)

	if _, err := New(nil, WithDiscovery(cs.addr, time.Millisecond)); !errors.Is(err, ErrDiscovery) {
		t.Fatalf("New with the endpoint down: %v, want ErrDiscovery", err)
	}
	refused := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	if _, err := New(nil, WithDiscovery(refused, time.Millisecond)); !errors.Is(err, ErrDiscovery) {
		t.Fatalf("New with nothing at the endpoint: %v, want ErrDiscovery", err)
	}

	tr, err := New(nil, WithDiscovery(cs.addr, 5*time.Millisecond), WithDiscoveryRetry(true))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Get(ctx, "k"); !errors.Is(err, ErrNoServers) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get before the first list: %v, want ErrNoServers", err)
	}
	got, err := tr.GetMulti(ctx, []string{"k", "l"})
	if !errors.Is(err, ErrNoServers) || len(got) != 0 {
		t.Fatalf("GetMulti before the first list: %v, %v", got, err)
	}
	if err := tr.Set(ctx, "k", tier.Entry{Value: []byte("v")}); !errors.Is(err, ErrNoServers) {
		t.Fatalf("Set before the first list: %v", err)
	}
	if c := tr.Counters(); c["discovery_version"] != -1 || c["node_down"] != 3 {
		t.Fatalf("counters before the first list: %v", c)
	}
	cs.set(1, entry("node", mc.Addr))
	cs.setDown(false)
	waitVersion(t, tr, 1)
	roundTrip(t, tr, mc.Addr)
}

func TestDiscoveryOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []Option
	}{
		{"endpoint without port", []Option{WithDiscovery("cfg.example.com", time.Minute)}},
		{"endpoint without host", []Option{WithDiscovery(":11211", time.Minute)}},
		{"endpoint with bad port", []Option{WithDiscovery("cfg.example.com:x", time.Minute)}},
		{"zero interval", []Option{WithDiscovery("cfg.example.com:11211", 0)}},
		{"retry without discovery", []Option{WithDiscoveryRetry(true)}},
		{"with a selector", []Option{WithDiscovery("cfg.example.com:11211", time.Minute), WithSelector(new(memcache.ServerList))}},
		{"selector with auto-eject", []Option{WithSelector(new(memcache.ServerList)), WithAutoEject(true)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tr, err := New(nil, tt.opts...); !errors.Is(err, ErrInvalidOption) {
				if tr != nil {
					tr.Close()
				}
				t.Fatalf("New: %v, want ErrInvalidOption", err)
			}
		})
	}
}
