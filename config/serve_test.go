package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/config"
)

func TestParseServe(t *testing.T) {
	t.Parallel()
	f, err := config.Parse([]byte(source+`serve:
  listen: 127.0.0.1:11311
  route: article
  separator: "/"
  on_source_error: miss
  max_connections: 10000
  max_line: 256KiB
  max_value: 2MiB
  idle_timeout: 10m
  request_timeout: 2s
  shutdown_timeout: 5s
`), "serve.yml")
	if err != nil {
		t.Fatal(err)
	}
	want := config.Serve{Listen: "127.0.0.1:11311", Route: "article", Separator: "/", OnSourceError: "miss",
		MaxConnections: 10000, MaxLine: 256 << 10, MaxValue: 2 << 20, IdleTimeout: config.Duration(10 * time.Minute),
		RequestTimeout: config.Duration(2 * time.Second), ShutdownTimeout: config.Duration(5 * time.Second)}
	if f.Serve != want {
		t.Fatalf("serve = %+v, want %+v", f.Serve, want)
	}
}

func TestParseServeBad(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, section string
		line          int
		msg           string
	}{
		{"listen without port", "  listen: localhost\n", 5, "want host:port"},
		{"route with the separator", "  route: a:b\n", 5, `route "a:b"`},
		{"separator with a space", "  separator: ' '\n", 5, "separator"},
		{"unknown on_source_error", "  on_source_error: stale\n", 5, "want error or miss"},
		{"short max_line", "  max_line: 100\n", 5, "at least 1KiB"},
		{"unknown key", "  port: 1\n", 5, `unknown key "port" in serve`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte(source+"serve:\n"+c.section), "bad.yml")
			var ce *config.Error
			if !errors.As(err, &ce) || len(ce.Problems) != 1 {
				t.Fatalf("Parse = %v, want one problem", err)
			}
			if p := ce.Problems[0]; p.Line != c.line || !strings.Contains(p.Msg, c.msg) {
				t.Fatalf("problem at line %d %q, want line %d containing %q", p.Line, p.Msg, c.line, c.msg)
			}
		})
	}
}
