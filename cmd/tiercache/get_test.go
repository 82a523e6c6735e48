package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/store/boltdb"
)

func TestGetNamesTheTier(t *testing.T) {
	r := newRig(t, 50, "")
	steps := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"cold key from SQL", []string{"get", "-c", r.config, "7"}, exitOK, "7\tsql\tarticle 7\n"},
		{"then from memcached", []string{"get", "-c", r.config, "7"}, exitOK, "7\tmemcached\tarticle 7\n"},
		{"a missing row", []string{"get", "-c", r.config, "999"}, exitNotFound, "999\tsql\tnot-found\n"},
		{"then its negative entry", []string{"get", "-c", r.config, "999", "8"}, exitNotFound, "999\tmemcached\tnot-found\n8\tsql\tarticle 8\n"},
		{"raw value", []string{"get", "-c", r.config, "--raw", "7"}, exitOK, "article 7"},
	}
	for _, s := range steps {
		if got := mustCLI(t, s.code, "", s.args...); got != s.want {
			t.Fatalf("%s: got %q, want %q", s.name, got, s.want)
		}
	}

	// memcached restarts empty: the durable file answers.
	r.mc.Restart()
	out := mustCLI(t, exitOK, "", "get", "-c", r.config, "--json", "7", "8")
	var res []getResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(res) != 2 || res[0].AnsweredBy != "bbolt" || res[0].Value != "article 7" || !res[0].Found {
		t.Fatalf("after a memcached restart: %+v", res)
	}

	// The file is held by a service: get gives up with exit code 4, and
	// --no-durable goes around the file.
	service, err := boltdb.Open(r.durable)
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()
	if code, _, stderr := cli(t, "", "get", "-c", r.config, "9"); code != exitBusy || !strings.Contains(stderr, "cache.db") {
		t.Fatalf("get beside a service: exit %d, %s", code, stderr)
	}
	hold := mustCLI(t, exitOK, "", "get", "-c", r.config, "--no-durable", "9")
	if hold != "9\tsql\tarticle 9\n" {
		t.Fatalf("--no-durable: %q", hold)
	}
}

func TestUsageAndErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("source:\n  dsn: x\n  query: q IN (?)\ndurable:\n  pth: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown command", []string{"frobnicate"}, exitUsage, "unknown command"},
		{"unknown flag", []string{"get", "--nope", "k"}, exitUsage, "unknown flag"},
		{"get without a key", []string{"get", "-c", bad}, exitUsage, "requires at least 1 arg"},
		{"get without -c", []string{"get", "k"}, exitUsage, "-c FILE"},
		{"bench scenario", []string{"bench", "-c", bad, "warp"}, exitUsage, `unknown scenario "warp"`},
		{"config error names the line", []string{"get", "-c", bad, "k"}, exitFailure, bad + `:5: unknown key "pth" in durable`},
		{"ring without a pool", []string{"ring"}, exitUsage, "--servers"},
		{"inspect a missing file", []string{"inspect", filepath.Join(dir, "none.db")}, exitFailure, "no such file"},
		{"stats without an address", []string{"stats"}, exitUsage, "--addr"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := cli(t, "", c.args...)
			if code != c.code || !strings.Contains(stderr, c.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, c.code, c.stderr)
			}
		})
	}
	for _, args := range [][]string{{"--help"}, {"bench", "--help"}, {"help", "inspect"}} {
		code, out, _ := cli(t, "", args...)
		if code != exitOK || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d, output %q", args, code, out)
		}
	}
}

// TestGetStrict points the file's memcached at a port nobody listens on:
// the chain answers from SQL, and get says that memcached failed and, with
// --strict (the default), exits 1.
func TestGetStrict(t *testing.T) {
	r := newRig(t, 5, "")
	cfg, err := os.ReadFile(r.config)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(r.dir, "mistyped.yml")
	mistyped := strings.Replace(string(cfg), r.mc.Addr, "127.0.0.1:1", 1)
	if err := os.WriteFile(bad, []byte(mistyped), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := cli(t, "", "get", "-c", bad, "--no-durable", "1", "2")
	if code != exitFailure || !strings.Contains(stderr, "tier memcached failed on 2 of 2 keys") ||
		!strings.Contains(stderr, "127.0.0.1:1") || !strings.Contains(out, "1\tsql\tarticle 1") {
		t.Errorf("strict get: exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	code, out, stderr = cli(t, "", "get", "-c", bad, "--no-durable", "--strict=false", "--json", "1")
	if code != exitOK || !strings.Contains(stderr, "tier memcached failed") || !strings.Contains(out, `"failed_tiers": [`) {
		t.Errorf("--strict=false: exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	if code, _, stderr := cli(t, "", "get", "-c", r.config, "--no-durable", "1"); code != exitOK || stderr != "" {
		t.Errorf("get through a working chain: exit %d, %s", code, stderr)
	}
}

// TestLockHintsNameRealFlags holds the durable file with a service and
// checks that each command refused the file suggests only flags it has.
func TestLockHintsNameRealFlags(t *testing.T) {
	r := newRig(t, 5, "")
	mustCLI(t, exitOK, "", "get", "-c", r.config, "1")
	service, err := tiercache.Load(r.config)
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()
	flagRE := regexp.MustCompile(`--[a-z][a-z-]*`)
	for _, args := range [][]string{
		{"get", "-c", r.config, "1"},
		{"gc", "-c", r.config, "--lock-timeout", "50ms"},
		{"inspect", r.durable, "--lock-timeout", "50ms"},
		{"warmup", "-c", r.config, "--lock-timeout", "50ms"},
	} {
		code, _, stderr := cli(t, "", args...)
		if code != exitBusy {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitBusy, stderr)
			continue
		}
		cmd, _, err := newRoot(&globals{}).Find(args[:1])
		if err != nil {
			t.Fatal(err)
		}
		for _, flag := range flagRE.FindAllString(stderr, -1) {
			if cmd.Flags().Lookup(flag[2:]) == nil && cmd.InheritedFlags().Lookup(flag[2:]) == nil {
				t.Errorf("%s suggests %s, which it does not have: %s", args[0], flag, stderr)
			}
		}
	}
}
