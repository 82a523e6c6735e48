package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/store/memcached/ring"
)

// badValue is how a value type reports a mistake: yaml.v3 collects
// TypeErrors from every field instead of stopping at the first.
func badValue(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, fmt.Sprintf(format, args...))}}
}

func scalar(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", badValue(n, "want %s, not a %s", what, kindOf(n))
	}
	return n.Value, nil
}

func kindOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "scalar"
}

// Duration is a length of time written with a unit: "250ms", "10m", "24h".
// "0" is zero; other bare numbers are refused, since a reader cannot tell
// seconds from milliseconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "a duration such as 30s")
	if err != nil {
		return err
	}
	v, err := parseDuration(s, false)
	if err != nil {
		return badValue(n, "%v", err)
	}
	*d = Duration(v)
	return nil
}

// Millis is a duration in a field nutcracker.yml writes in milliseconds: a
// bare number is milliseconds ("400"), a number with a unit is read as a
// Duration ("400ms", "2s").
type Millis time.Duration

// D returns m as a time.Duration.
func (m Millis) D() time.Duration { return time.Duration(m) }

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *Millis) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "milliseconds, or a duration such as 2s")
	if err != nil {
		return err
	}
	v, err := parseDuration(s, true)
	if err != nil {
		return badValue(n, "%v", err)
	}
	*m = Millis(v)
	return nil
}

func parseDuration(s string, bareMillis bool) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case ms < 0:
			return 0, fmt.Errorf("%q: negative duration", s)
		case bareMillis && ms <= math.MaxInt64/int64(time.Millisecond):
			return time.Duration(ms) * time.Millisecond, nil
		case ms == 0:
			return 0, nil
		case bareMillis:
			return 0, fmt.Errorf("%q: too long", s)
		}
		return 0, fmt.Errorf("%q: write a unit, for example %ss or %sms", s, s, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (write 250ms, 30s, 10m, 24h)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q: negative duration", s)
	}
	return d, nil
}

// Size is a number of bytes, written bare or with a binary unit: "64KiB",
// "512MiB", "2GiB"; K, KB, M, MB, G, GB and T, TB mean the same binary units,
// as memcached reads its -I option.
type Size int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (sz *Size) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "a size such as 512MiB")
	if err != nil {
		return err
	}
	v, err := parseSize(s)
	if err != nil {
		return badValue(n, "%v", err)
	}
	*sz = Size(v)
	return nil
}

func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	var shift uint
	switch unit {
	case "", "b":
	case "k", "kb", "kib":
		shift = 10
	case "m", "mb", "mib":
		shift = 20
	case "g", "gb", "gib":
		shift = 30
	case "t", "tb", "tib":
		shift = 40
	default:
		return 0, fmt.Errorf("%q is not a size (write bytes, or 64KiB, 512MiB, 2GiB)", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("%q is not a size (write bytes, or 64KiB, 512MiB, 2GiB)", s)
	}
	v := f * float64(int64(1)<<shift)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%q: too large", s)
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	}
	return int64(v), nil
}

// Server is one memcached server, "host:port[:weight] [name]" as in
// nutcracker.yml.
type Server struct {
	memcached.Server
	// Spec is the string as written, what memcached.New takes.
	Spec string
	Line int
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Server) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n, `a server "host:port:weight [name]"`)
	if err != nil {
		return err
	}
	srv, err := memcached.ParseServer(v)
	if err != nil {
		return badValue(n, "%v", err)
	}
	*s = Server{Server: srv, Spec: v, Line: n.Line}
	return nil
}

// HashTag is nutcracker's hash_tag: two characters, such as "{}", between
// which the part of a key that picks its server is found.
type HashTag string

// UnmarshalYAML implements yaml.Unmarshaler.
func (h *HashTag) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n, `two characters such as "{}"`)
	if err != nil {
		return err
	}
	if len(v) != 2 {
		return badValue(n, "hash_tag %q: want exactly two characters, such as \"{}\"", v)
	}
	*h = HashTag(v)
	return nil
}

// The hashes and distributions key placement knows (twemproxy's, and
// libmemcached's ketama).
var (
	knownHashes        = ring.Hashes()
	knownDistributions = ring.Distributions()
)
