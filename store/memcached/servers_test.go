package memcached

import (
	"errors"
	"strings"
	"testing"
)

func TestParseServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Server
	}{
		{"127.0.0.1:11211:1", Server{"127.0.0.1:11211", 1, ""}},
		{"10.0.0.2:11211:2 cache-b", Server{"10.0.0.2:11211", 2, "cache-b"}},
		{"127.0.0.1:11211", Server{"127.0.0.1:11211", 1, ""}},
		{"  cache.local:11211:3\tbackup  ", Server{"cache.local:11211", 3, "backup"}},
		{"[::1]:11211:1", Server{"[::1]:11211", 1, ""}},
		{"[2001:db8::7]:11212 v6", Server{"[2001:db8::7]:11212", 1, "v6"}},
		{"localhost:11211:065535", Server{"localhost:11211", 65535, ""}},
	}
	for _, tt := range tests {
		got, err := ParseServer(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseServer(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseServerErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"", "   ", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:11211:0", "127.0.0.1:11211:65536", "127.0.0.1:11211:-1",
		"127.0.0.1:11211:1:1", "127.0.0.1:port", "127.0.0.1:11211:x",
		":11211", "::1:11211", "[::1]", "[::1]11211", "[::1:11211", "[127.0.0.1]:11211",
		"[nothost]:11211", "127.0.0.1:11211 a b", "/tmp/memcached.sock:1",
		"host name:11211", "127.0.0.1:11211 bad\x00name", "127.0.0.1:+11211",
		"127.0.0.1:011211",
	} {
		_, err := ParseServer(in)
		if !errors.Is(err, ErrBadServer) {
			t.Errorf("ParseServer(%q) = %v, want ErrBadServer", in, err)
			continue
		}
		if !strings.Contains(err.Error(), "\""+strings.ReplaceAll(in, "\x00", `\x00`)+"\"") {
			t.Errorf("error %q does not quote the input", err)
		}
	}
}

func TestPlacementName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"10.0.0.1:11211:1":       "10.0.0.1",
		"10.0.0.1:11212:1":       "10.0.0.1:11212",
		"10.0.0.1:11211:1 cache": "cache",
		"[::1]:11211":            "[::1]",
		"[::1]:22122":            "[::1]:22122",
	} {
		srv, err := ParseServer(in)
		if err != nil || srv.PlacementName() != want {
			t.Errorf("ParseServer(%q).PlacementName() = %q, %v; want %q", in, srv.PlacementName(), err, want)
		}
	}
}

// FuzzParseServer checks that ParseServer never panics, that every error
// wraps ErrBadServer, and that what it accepts prints back (String) into
// a string that parses to the same Server.
func FuzzParseServer(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:11211:1", "10.0.0.2:11211:2 cache-b", "[::1]:11211:1",
		"[fe80::1%eth0]:11211", "host:1:65535 n", "a:b:c:d", "[::1]", " x ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		srv, err := ParseServer(s)
		if err != nil {
			if !errors.Is(err, ErrBadServer) {
				t.Fatalf("ParseServer(%q): %v does not wrap ErrBadServer", s, err)
			}
			return
		}
		if srv.Weight < 1 || srv.Weight > maxWeight || srv.Addr == "" {
			t.Fatalf("ParseServer(%q) = %+v", s, srv)
		}
		again, err := ParseServer(srv.String())
		if err != nil || again != srv {
			t.Fatalf("ParseServer(%q) = %+v, but its String %q parses to %+v, %v", s, srv, srv.String(), again, err)
		}
	})
}
