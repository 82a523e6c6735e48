package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/spf13/cobra"

	"github.com/tiercache/tiercache/config"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/store/memcached/ring"
)

type ringFlags struct {
	servers      string
	pool         string
	hash         string
	distribution string
	hashTag      string
}

func newRingCmd(g *globals) *cobra.Command {
	var fl ringFlags
	cmd := &cobra.Command{
		Use:   "ring [--servers LIST | -c FILE [--pool NAME]]",
		Short: "Show which memcached node each key (one per line on stdin) lands on",
		Long: `ring reads keys from standard input, one per line, and prints where the
memcached pool places each:

  KEY <TAB> HOST:PORT

The pool comes from --servers (host:port:weight, comma separated; a name may
follow a space: "10.0.0.1:11211:1 cache-a,10.0.0.2:11211:1 cache-b"), or from
-c: the memcached section of a tiercache file, or with --pool NAME a pool of
a nutcracker.yml, so that tiercache's placement can be compared with
twemproxy's. --hash, --distribution and --hash-tag override the file.

Placement is the memcached tier's: with no hash, distribution or hash tag,
gomemcache's (crc32 of the key modulo the number of servers, in the order
listed), as memcached.New places keys without them; with any of them,
twemproxy's (store/memcached/ring), whose defaults are fnv1a_64 and ketama. A pool read
from a nutcracker.yml always uses twemproxy's.

Keys are placed as given, after the key_prefix of a tiercache file. (Keys
memcached cannot carry — over 250 bytes, spaces, control bytes — are hashed
by the memcached tier before placement; ring places them as given.)`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			nodes, cfg, prefix, err := ringPool(g, fl)
			if err != nil {
				return err
			}
			locate, err := locator(nodes, cfg)
			if err != nil {
				return err
			}
			out := bufio.NewWriter(g.io.out)
			defer out.Flush()
			in := bufio.NewScanner(g.io.in)
			in.Buffer(make([]byte, 64<<10), 1<<20)
			for in.Scan() {
				key := strings.TrimSuffix(in.Text(), "\r")
				if key == "" {
					continue
				}
				addr, err := locate(prefix + key)
				if err != nil {
					return err
				}
				if _, err := fmt.Fprintf(out, "%s\t%s\n", key, addr); err != nil {
					return err
				}
			}
			return in.Err()
		},
	}
	cmd.Flags().StringVar(&fl.servers, "servers", "", `the pool, "host:port:weight [name],..."`)
	cmd.Flags().StringVar(&fl.pool, "pool", "", "with -c nutcracker.yml: the pool to use")
	cmd.Flags().StringVar(&fl.hash, "hash", "", "the hash ("+strings.Join(ring.Hashes(), ", ")+")")
	cmd.Flags().StringVar(&fl.distribution, "distribution", "", "the distribution ("+strings.Join(ring.Distributions(), ", ")+")")
	cmd.Flags().StringVar(&fl.hashTag, "hash-tag", "", `two characters, such as "{}": only what is between them picks the node`)
	return cmd
}

// locator returns where the memcached tier puts a key, as memcached.New
// does: gomemcache's ServerList when no hash, distribution or hash tag is
// named, twemproxy's placement otherwise.
func locator(nodes []ring.Node, cfg ring.Config) (func(key string) (string, error), error) {
	if cfg.Hash == "" && cfg.Distribution == "" && cfg.HashTag == "" {
		addrs := make([]string, len(nodes))
		byResolved := make(map[string]string, len(nodes))
		for i, n := range nodes {
			addrs[i] = n.Addr
			tcp, err := net.ResolveTCPAddr("tcp", n.Addr)
			if err != nil {
				return nil, err
			}
			byResolved[tcp.String()] = n.Addr
		}
		var list memcache.ServerList
		if err := list.SetServers(addrs...); err != nil {
			return nil, err
		}
		return func(key string) (string, error) {
			a, err := list.PickServer(key)
			if err != nil {
				return "", err
			}
			return byResolved[a.String()], nil
		}, nil
	}
	r, err := ring.New(nodes, cfg)
	if err != nil {
		return nil, err
	}
	return func(key string) (string, error) { return nodes[r.Locate(key)].Addr, nil }, nil
}

// ringPool works out the nodes and placement from the flags and -c.
func ringPool(g *globals, fl ringFlags) (nodes []ring.Node, cfg ring.Config, prefix string, err error) {
	var specs []string
	switch {
	case fl.servers != "" && g.configPath != "":
		return nil, cfg, "", usageError("give --servers or -c, not both")
	case fl.servers != "":
		specs = strings.Split(fl.servers, ",")
	case g.configPath != "" && fl.pool != "":
		n, err := config.LoadNutcracker(g.configPath)
		if err != nil {
			return nil, cfg, "", err
		}
		p, err := n.Pool(fl.pool)
		if err != nil {
			return nil, cfg, "", err
		}
		specs = p.ServerSpecs()
		cfg = ring.Config{Hash: p.Hash, Distribution: p.Distribution, HashTag: string(p.HashTag)}
	case g.configPath != "":
		f, err := config.Load(g.configPath)
		if err != nil {
			return nil, cfg, "", err
		}
		if f.Memcached == nil || len(f.Memcached.Servers) == 0 {
			return nil, cfg, "", fmt.Errorf("%s lists no memcached servers (a nutcracker.yml needs --pool NAME)", g.configPath)
		}
		m := f.Memcached
		specs = m.ServerSpecs()
		cfg = ring.Config{Hash: m.Hash, Distribution: m.Distribution, HashTag: string(m.HashTag)}
		prefix = m.KeyPrefix
	default:
		return nil, cfg, "", usageError("give the pool: --servers LIST, or -c FILE")
	}
	if fl.pool != "" && g.configPath == "" {
		return nil, cfg, "", usageError("--pool names a pool of the nutcracker.yml given with -c")
	}
	for _, s := range specs {
		srv, err := memcached.ParseServer(strings.TrimSpace(s))
		if err != nil {
			return nil, cfg, "", usageError("%v", err)
		}
		nodes = append(nodes, ring.Node{Addr: srv.Addr, Weight: srv.Weight, Name: srv.Name})
	}
	if fl.hash != "" {
		cfg.Hash = fl.hash
	}
	if fl.distribution != "" {
		cfg.Distribution = fl.distribution
	}
	if fl.hashTag != "" {
		cfg.HashTag = fl.hashTag
	}
	return nodes, cfg, prefix, nil
}
