package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/config"
)

const nutcrackerFile = `alpha:
  listen: 127.0.0.1:22121
  hash: fnv1a_64
  distribution: ketama
  auto_eject_hosts: true
  redis: false
  server_retry_timeout: 2000
  server_failure_limit: 1
  servers:
   - 127.0.0.1:11211:1 node0
   - 127.0.0.1:11212:1 node1

beta:
  listen: 127.0.0.1:22122
  hash_tag: "{}"
  distribution: modula
  timeout: 400
  servers:
   - 127.0.0.1:11213:1
`

func TestParseNutcracker(t *testing.T) {
	t.Parallel()
	n, err := config.ParseNutcracker([]byte(nutcrackerFile), "nutcracker.yml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(n.Names, ",") != "alpha,beta" {
		t.Fatalf("pools %v, want alpha,beta in file order", n.Names)
	}
	a, err := n.Pool("alpha")
	if err != nil {
		t.Fatal(err)
	}
	if a.Hash != "fnv1a_64" || a.Distribution != "ketama" || !a.AutoEjectHosts || a.ServerRetryTimeout.D() != 2*time.Second || a.ServerFailureLimit != 1 || a.Line != 1 {
		t.Errorf("alpha = %+v", a)
	}
	if got := a.ServerSpecs(); len(got) != 2 || got[1] != "127.0.0.1:11212:1 node1" {
		t.Errorf("alpha servers = %q", got)
	}
	b, _ := n.Pool("beta")
	if b.Hash != "fnv1a_64" || b.Distribution != "modula" || b.HashTag != "{}" || b.Timeout.D() != 400*time.Millisecond || b.Line != 13 {
		t.Errorf("beta = %+v (want twemproxy's default hash)", b)
	}
	if _, err := n.Pool("gamma"); err == nil || !strings.Contains(err.Error(), "pools: alpha, beta") {
		t.Errorf("Pool(gamma) = %v", err)
	}
}

func TestParseNutcrackerBad(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, file string
		line       int
		msg        string
	}{
		{"unknown key", "alpha:\n  listen: 127.0.0.1:1\n  hashing: md5\n  servers: [127.0.0.1:11211:1]\n", 3, `unknown key "hashing" in the pool`},
		{"bad server", "alpha:\n  servers:\n   - 127.0.0.1\n", 3, "missing port"},
		{"no servers", "alpha:\n  listen: 127.0.0.1:1\n", 1, "no servers"},
		{"unknown hash", "alpha:\n  hash: sha1\n  servers: [127.0.0.1:11211:1]\n", 1, `unknown hash "sha1"`},
		{"not pools", "- a\n", 0, "want pools keyed by name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.ParseNutcracker([]byte(c.file), "n.yml")
			var ce *config.Error
			if !errors.As(err, &ce) || len(ce.Problems) != 1 {
				t.Fatalf("ParseNutcracker = %v, want one problem", err)
			}
			if p := ce.Problems[0]; p.Line != c.line || !strings.Contains(p.Msg, c.msg) {
				t.Errorf("problem = line %d %q, want line %d containing %q", p.Line, p.Msg, c.line, c.msg)
			}
		})
	}
}
