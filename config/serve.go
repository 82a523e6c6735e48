package config

import (
	"net"
	"strings"
	"time"
)

// Defaults of the serve section.
const (
	// DefaultServeListen is twemproxy's usual port on loopback: the server
	// runs beside the application, as twemproxy is usually deployed, and an
	// application moving from twemproxy keeps its address.
	DefaultServeListen = "127.0.0.1:22121"
	// DefaultServeSeparator ends a route's name in a key: "article:42".
	DefaultServeSeparator = ":"
	// DefaultShutdownTimeout is how long tiercache serve lets connections
	// finish their commands after SIGTERM before closing them.
	DefaultShutdownTimeout = 30 * time.Second
)

// Serve configures tiercache serve, the memcached-protocol server in front
// of the chain. Zero values take the defaults documented on each field.
type Serve struct {
	// Listen is host:port (default DefaultServeListen).
	Listen string `yaml:"listen"`
	// Route names the source's keys: "article" sends "article:42" through
	// the chain as key "42". Keys without the prefix are plain cache.
	// Required by tiercache serve.
	Route string `yaml:"route"`
	// Separator ends the route's name in a key (default ":").
	Separator string `yaml:"separator"`
	// OnSourceError is what a get of a key the source cannot be asked for
	// answers when no stale copy may be served (stale_if_error): "miss"
	// (the default) or "error", a SERVER_ERROR reply to the whole command
	// (see docs/serve.md for what clients make of each).
	OnSourceError string `yaml:"on_source_error"`
	// MaxConnections is how many clients are served at once (default 4096).
	MaxConnections int `yaml:"max_connections"`
	// MaxLine bounds a command line (default 1MiB).
	MaxLine Size `yaml:"max_line"`
	// MaxValue bounds a stored value (default 1MiB, memcached's).
	MaxValue Size `yaml:"max_value"`
	// IdleTimeout closes a connection silent that long (default 0: never).
	IdleTimeout Duration `yaml:"idle_timeout"`
	// RequestTimeout bounds one command's work (default 10s).
	RequestTimeout Duration `yaml:"request_timeout"`
	// ShutdownTimeout bounds the graceful part of a shutdown (default 30s).
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

func init() { registerSection("config.Serve", "serve") }

// checkServe finds the mistakes of the serve section.
func (f *File) checkServe(ps *problems) {
	s := f.Serve
	at := f.Line
	if s.Listen != "" {
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			ps.add(at("serve", "listen"), "serve: listen %q: want host:port", s.Listen)
		}
	}
	if strings.ContainsAny(s.Separator, " \t\r\n") {
		ps.add(at("serve", "separator"), "serve: separator %q: no spaces or control bytes", s.Separator)
	}
	sep := s.Separator
	if sep == "" {
		sep = DefaultServeSeparator
	}
	if s.Route != "" && (strings.ContainsAny(s.Route, " \t\r\n") || strings.Contains(s.Route, sep)) {
		ps.add(at("serve", "route"), "serve: route %q: no spaces, control bytes or separator %q", s.Route, sep)
	}
	if e := s.OnSourceError; e != "" && e != "error" && e != "miss" {
		ps.add(at("serve", "on_source_error"), "serve: on_source_error %q: want error or miss", e)
	}
	if s.MaxConnections < 0 {
		ps.add(at("serve", "max_connections"), "serve: max_connections %d: must not be negative", s.MaxConnections)
	}
	if s.MaxLine != 0 && s.MaxLine < 1024 {
		ps.add(at("serve", "max_line"), "serve: max_line %d: want at least 1KiB", s.MaxLine)
	}
	if s.MaxValue < 0 {
		ps.add(at("serve", "max_value"), "serve: max_value %d: must not be negative", s.MaxValue)
	}
}
