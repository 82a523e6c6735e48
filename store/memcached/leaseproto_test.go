package memcached

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
)

// Auto picks meta on memcached and classic through nutcracker, asking each
// node once however many callers lease at the same moment, and the probe
// (which nutcracker answers by hanging up) neither marks the node down nor
// counts as a request.
func TestLeaseProtocolAuto(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		proxied bool
		want    string
	}{
		{"memcached", false, "lease_protocol_meta"},
		{"nutcracker", true, "lease_protocol_classic"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := leaseSetup{protocol: LeaseProtocolAuto, proxied: c.proxied}
			tg := s.start(t)
			tr := s.client(t, tg.addr, WithFailureLimit(1))
			ns := nodeStats(t, tr, tg.addr)
			if ns.Counters["lease_protocol_meta"]+ns.Counters["lease_protocol_classic"] != 0 {
				t.Fatalf("protocol known before any lease: %v", ns.Counters)
			}
			var wg sync.WaitGroup
			won := make(chan string, 8)
			for g := range 8 {
				wg.Go(func() {
					key := "k" + string(rune('a'+g))
					ls, err := tr.Lease(context.Background(), []string{key, "shared"}, tier.LeaseRequest{TTL: 3 * time.Second, Now: time.Now()})
					if err != nil || len(ls) != 2 {
						t.Errorf("Lease: %v, %v", ls, err)
						return
					}
					if ls[key].State != tier.LeaseWon {
						t.Errorf("lease of %s = %+v, want won", key, ls[key])
					}
					if ls["shared"].State == tier.LeaseWon {
						won <- key
					}
				})
			}
			wg.Wait()
			close(won)
			if n := len(won); n != 1 {
				t.Errorf("%d callers won the shared key, want 1", n)
			}
			ns = nodeStats(t, tr, tg.addr)
			other := "lease_protocol_meta"
			if c.want == other {
				other = "lease_protocol_classic"
			}
			if ns.Counters[c.want] != 1 || ns.Counters[other] != 0 {
				t.Errorf("node counters %v, want %s", ns.Counters, c.want)
			}
			if ns.State != "up" || ns.Counters["ejections"] != 0 || ns.Counters["errors"] != 0 {
				t.Errorf("node %s after the probe: %v", ns.State, ns.Counters)
			}
			wantRequests := int64(8) // one round trip per Lease...
			if c.proxied {
				wantRequests = 16 // ...two on the classic protocol, which wins
			}
			if got := ns.Counters["requests"]; got != wantRequests {
				t.Errorf("%d requests, want %d: the probe is not one", got, wantRequests)
			}
			cs := tr.Counters()
			if cs["lease_protocol_probes"] != 1 || cs["lease_protocol_probe_errors"] != 0 || cs[c.want] != 1 || cs["errors"] != 0 {
				t.Errorf("counters %v, want one probe that found %s", cs, c.want)
			}
		})
	}
}

// What a probe concludes from what a server says, with servers that say
// what a real one of the kind would.
func TestLeaseProtocolProbe(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		reply func(line string) string // "" closes the connection
		want  leaseProto
	}{
		{"memcached 1.6", func(l string) string {
			return map[string]string{"version": "VERSION 1.6.21\r\n", "mn": "MN\r\n"}[l]
		}, protoMeta},
		{"memcached 1.5 with experimental meta commands", func(l string) string {
			return map[string]string{"version": "VERSION 1.5.22\r\n", "mn": "MN\r\n"}[l]
		}, protoClassic},
		{"memcached 1.4", func(l string) string {
			return map[string]string{"version": "VERSION 1.4.25\r\n", "mn": "ERROR\r\n"}[l]
		}, protoClassic},
		{"a proxy that hangs up on mn", func(l string) string {
			return map[string]string{"version": "VERSION 1.6.18\r\n"}[l]
		}, protoClassic},
		{"a version that does not parse", func(l string) string {
			return map[string]string{"version": "VERSION proxy-2.0\r\n", "mn": "MN\r\n"}[l]
		}, protoMeta},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fs := startFakeServer(t, func(conn net.Conn, r *bufio.Reader) {
				readLines(r, func(line string) {
					reply := c.reply(line)
					if reply == "" {
						conn.Close()
						return
					}
					conn.Write([]byte(reply))
				})
			})
			tr, err := New([]string{fs.addr}, WithFailureLimit(1))
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			n := tr.members.current.Load().nodes()[0]
			for range 2 {
				if p, err := tr.leaseProtocol(n); p != c.want || err != nil {
					t.Fatalf("protocol %v, %v; want %v", p, err, c.want)
				}
			}
			if cs := tr.Counters(); cs["lease_protocol_probes"] != 1 {
				t.Fatalf("%d probes, want 1", cs["lease_protocol_probes"])
			}
		})
	}
}

// A node that does not answer the probe is not decided, nor marked down
// by it: the lease fails for its keys, and the next one asks again.
func TestLeaseProtocolProbeUnanswered(t *testing.T) {
	t.Parallel()
	tr, addr := hungTier(t)
	for range 2 {
		ls, err := tr.Lease(context.Background(), []string{"k"}, tier.LeaseRequest{TTL: time.Second, Now: time.Now()})
		if len(ls) != 0 || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "lease protocol probe") {
			t.Fatalf("Lease = %v, %v; want nothing and the probe's ErrUnavailable", ls, err)
		}
	}
	ns := nodeStats(t, tr, addr)
	if ns.State != "up" || ns.Counters["ejections"] != 0 || ns.Counters["lease_protocol_meta"]+ns.Counters["lease_protocol_classic"] != 0 {
		t.Fatalf("node %s, %v; want up and undecided", ns.State, ns.Counters)
	}
	if cs := tr.Counters(); cs["lease_protocol_probes"] != 2 || cs["lease_protocol_probe_errors"] != 2 {
		t.Fatalf("counters %v, want two failed probes", cs)
	}
}

func TestWithLeaseProtocol(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p    LeaseProtocol
		want error
	}{
		{LeaseProtocolAuto, nil}, {LeaseProtocolMeta, nil}, {LeaseProtocolClassic, nil},
		{"", ErrInvalidOption}, {"binary", ErrInvalidOption}, {"Meta", ErrInvalidOption},
	} {
		tr, err := New([]string{"127.0.0.1:11211"}, WithLeaseProtocol(c.p))
		if !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
			t.Errorf("WithLeaseProtocol(%q): %v, want %v", c.p, err, c.want)
		}
		if err == nil {
			tr.Close()
		}
	}
}

// Processes on either protocol share one memcached: each sees the other's
// leases held, fills hits, and leases that ran out free to take over.
func TestLeaseProtocolsShareMemcached(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc := testenv.Memcached(t)
	meta, classic := metaSetup.client(t, mc.Addr), classicSetup.client(t, mc.Addr)
	for _, c := range []struct {
		name           string
		holder, waiter *Tier
	}{
		{"meta holds", meta, classic},
		{"classic holds", classic, meta},
	} {
		key := c.name
		l := leaseOne(t, c.holder, key, tier.LeaseRequest{})
		if l.State != tier.LeaseWon {
			t.Fatalf("%s: lease %+v, want won", c.name, l)
		}
		if w := leaseOne(t, c.waiter, key, tier.LeaseRequest{}); w.State != tier.LeaseHeld {
			t.Fatalf("%s: the other protocol's lease = %+v, want held", c.name, w)
		}
		if err := c.holder.Fill(ctx, key, l, entryWrite("v", time.Minute, tier.Marker{})); err != nil {
			t.Fatal(err)
		}
		if w := leaseOne(t, c.waiter, key, tier.LeaseRequest{}); w.State != tier.LeaseHit || string(w.Entry.Value) != "v" {
			t.Fatalf("%s: lease after the fill = %+v, want a hit", c.name, w)
		}

		// A holder that vanishes over a marker: the other takes over.
		key += " over a marker"
		now := time.Now()
		if err := c.waiter.Invalidate(ctx, key, tier.LeaseWrite{Marker: tier.Marker{At: now}}); err != nil {
			t.Fatal(err)
		}
		dead := leaseOne(t, c.holder, key, tier.LeaseRequest{Now: now, TTL: 2 * time.Second})
		if dead.State != tier.LeaseWon {
			t.Fatalf("%s: lease over the marker = %+v", c.name, dead)
		}
		w := leaseOne(t, c.waiter, key, tier.LeaseRequest{Now: now.Add(3 * time.Second), TTL: 2 * time.Second})
		if w.State != tier.LeaseWon || w.Marker.At.IsZero() {
			t.Fatalf("%s: lease after it ran out = %+v, want won with the marker", c.name, w)
		}
		if err := c.holder.Fill(ctx, key, dead, entryWrite("late", time.Minute, dead.Marker)); !errors.Is(err, tier.ErrLeaseLost) {
			t.Fatalf("%s: fill of the lost lease: %v, want ErrLeaseLost", c.name, err)
		}
		if err := c.waiter.Fill(ctx, key, w, entryWrite("v2", time.Minute, w.Marker)); err != nil {
			t.Fatal(err)
		}
		if e := mustGet(t, c.holder, key); string(e.Value) != "v2" {
			t.Fatalf("%s: Get = %q, want v2", c.name, e.Value)
		}

		// A release lets the other protocol win at once.
		key += " released"
		l = leaseOne(t, c.holder, key, tier.LeaseRequest{})
		if err := c.holder.Release(ctx, key, l); err != nil {
			t.Fatal(err)
		}
		if w := leaseOne(t, c.waiter, key, tier.LeaseRequest{}); w.State != tier.LeaseWon {
			t.Fatalf("%s: lease after a release = %+v, want won", c.name, w)
		}
	}
	for _, tr := range []*Tier{meta, classic} {
		if n := tr.Counters()["decode_errors"]; n != 0 {
			t.Fatalf("decode_errors = %d, want 0", n)
		}
	}
}

// A memcached behind nutcracker dies: nutcracker answers for its keys
// with SERVER_ERROR (and may hang up after a multi-key gets), the leases
// of those keys fail, the others are still granted, and the proxy, which
// is the Tier's node, is not marked down.
func TestLeaseThroughNutcrackerServerDown(t *testing.T) {
	t.Parallel()
	tg := proxiedSetup.start(t)
	tr := proxiedSetup.client(t, tg.addr, WithFailureLimit(1))
	tg.backends[1].Kill()
	keys := make([]string, 250)
	for i := range keys {
		keys[i] = strconv.Itoa(i) + ":key" // fnv1a_64 spreads keys by their first bytes
	}
	req := tier.LeaseRequest{TTL: 3 * time.Second, Now: time.Now()}
	for range 3 {
		if _, err := tr.Lease(context.Background(), keys, req); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Lease of a batch with keys on the dead server: %v, want ErrUnavailable", err)
		}
	}
	won, failed := 0, 0
	for _, k := range keys[:40] {
		ls, err := tr.Lease(context.Background(), []string{k}, req)
		switch l, ok := ls[k]; {
		case ok && l.State == tier.LeaseWon && err == nil:
			won++
		case !ok && errors.Is(err, ErrUnavailable):
			failed++
		default:
			t.Fatalf("lease of %s = %+v, %v", k, ls, err)
		}
	}
	if won == 0 || failed == 0 {
		t.Errorf("%d keys won and %d failed; want some of each, as they fall on the live and the dead server", won, failed)
	}
	if ns := nodeStats(t, tr, tg.addr); ns.State != "up" || ns.Counters["ejections"] != 0 {
		t.Errorf("nutcracker's node %s, %v; want it up", ns.State, ns.Counters)
	}
}
