package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Nutcracker is a twemproxy configuration: server pools by name.
type Nutcracker struct {
	// Names are the pools in the order the file lists them.
	Names []string
	Pools map[string]*Pool
	path  string
}

// Pool is one pool of a nutcracker.yml, with every key twemproxy 0.5
// accepts. Line is where the pool starts.
type Pool struct {
	Listen             string   `yaml:"listen"`
	Hash               string   `yaml:"hash"`
	HashTag            HashTag  `yaml:"hash_tag"`
	Distribution       string   `yaml:"distribution"`
	Timeout            Millis   `yaml:"timeout"`
	Backlog            int      `yaml:"backlog"`
	ClientConnections  int      `yaml:"client_connections"`
	TCPKeepalive       bool     `yaml:"tcpkeepalive"`
	Redis              bool     `yaml:"redis"`
	RedisAuth          string   `yaml:"redis_auth"`
	RedisDB            int      `yaml:"redis_db"`
	Preconnect         bool     `yaml:"preconnect"`
	AutoEjectHosts     bool     `yaml:"auto_eject_hosts"`
	ServerConnections  int      `yaml:"server_connections"`
	ServerRetryTimeout Millis   `yaml:"server_retry_timeout"`
	ServerFailureLimit int      `yaml:"server_failure_limit"`
	Servers            []Server `yaml:"servers"`
	Line               int      `yaml:"-"`
}

func init() { registerSection("config.Pool", "the pool") }

// LoadNutcracker reads a nutcracker.yml.
func LoadNutcracker(path string) (*Nutcracker, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseNutcracker(data, path)
}

// ParseNutcracker reads a nutcracker.yml; name is used in error messages.
// Defaults are twemproxy's: hash fnv1a_64, distribution ketama.
func ParseNutcracker(data []byte, name string) (*Nutcracker, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlProblems(err, data).err(name)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, problems{{Msg: "want pools keyed by name"}}.err(name)
	}
	var raw map[string]*Pool
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlProblems(err, data).err(name)
	}
	n := &Nutcracker{Pools: map[string]*Pool{}, path: name}
	var ps problems
	top := root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		key := top.Content[i]
		p := raw[key.Value]
		if p == nil {
			ps.add(key.Line, "pool %q is empty", key.Value)
			continue
		}
		p.Line = key.Line
		if p.Hash == "" {
			p.Hash = "fnv1a_64"
		}
		if p.Distribution == "" {
			p.Distribution = "ketama"
		}
		if !slices.Contains(knownHashes, p.Hash) {
			ps.add(key.Line, "pool %s: unknown hash %q, want one of %s", key.Value, p.Hash, strings.Join(knownHashes, ", "))
		}
		if !slices.Contains(knownDistributions, p.Distribution) {
			ps.add(key.Line, "pool %s: unknown distribution %q", key.Value, p.Distribution)
		}
		if len(p.Servers) == 0 {
			ps.add(key.Line, "pool %s: no servers", key.Value)
		}
		n.Names = append(n.Names, key.Value)
		n.Pools[key.Value] = p
	}
	return n, ps.err(name)
}

// Pool returns the pool called name, or an error listing the pools there
// are.
func (n *Nutcracker) Pool(name string) (*Pool, error) {
	if p, ok := n.Pools[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("config: %s has no pool %q (pools: %s)", n.path, name, strings.Join(n.Names, ", "))
}

// ServerSpecs returns the pool's servers as memcached.New takes them.
func (p *Pool) ServerSpecs() []string {
	out := make([]string, len(p.Servers))
	for i, s := range p.Servers {
		out[i] = s.Spec
	}
	return out
}

// ServerSpecs returns the servers as memcached.New takes them.
func (m *Memcached) ServerSpecs() []string {
	out := make([]string, len(m.Servers))
	for i, s := range m.Servers {
		out[i] = s.Spec
	}
	return out
}
