package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/config"
)

func TestParseMemory(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		yaml       string
		wantNil    bool
		ttl        time.Duration
		maxBytes   int64
		maxEntries int
	}{
		{"absent", source, true, 0, 0, 0},
		{"defaults", "memory: {}\n" + source, false, config.DefaultMemoryTTL, config.DefaultMemoryMaxBytes, 0},
		{"set", "memory:\n  max_bytes: 256MiB\n  max_entries: 100000\n  ttl: 500ms\n" + source, false, 500 * time.Millisecond, 256 << 20, 100000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := config.Parse([]byte(tc.yaml), "memory.yml")
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantNil {
				if f.Memory != nil {
					t.Fatalf("Memory = %+v, want nil", f.Memory)
				}
				return
			}
			m := f.Memory
			if m == nil || m.TTL.D() != tc.ttl || int64(m.MaxBytes) != tc.maxBytes || m.MaxEntries != tc.maxEntries {
				t.Fatalf("Memory = %+v, want ttl %v, max_bytes %d, max_entries %d", m, tc.ttl, tc.maxBytes, tc.maxEntries)
			}
		})
	}
}

func TestParseMemoryBad(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml, want string
	}{
		{"zero ttl", "memory:\n  ttl: 0\n" + source, "memory.yml:2: memory: ttl 0s: want a positive duration"},
		{"tiny max_bytes", "memory:\n  max_bytes: 10\n" + source, "memory.yml:2: memory: max_bytes 10"},
		{"negative max_entries", "memory:\n  max_entries: -1\n" + source, "memory.yml:2: memory: max_entries -1"},
		{"unknown key", "memory:\n  size: 1MiB\n" + source, `memory.yml:2: unknown key "size" in memory`},
		{"auto warmup", "memory: {}\nmemcached:\n  servers: [127.0.0.1:11211]\n  restart_detection: 1s\ndurable:\n  path: x\nwarmup:\n  auto: true\n" + source,
			"memory.yml:8: warmup: auto watches the top tier for restarts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte(tc.yaml), "memory.yml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
