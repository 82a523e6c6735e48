package e2e

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
)

// stampede is a helper's job in the stampede tests: every goroutine asks
// for every key at once, half of them with one GetMulti, half with a Get
// per key, each starting at a different key.
func (h *helperChain) stampede() helperResult {
	var (
		res helperResult
		mu  sync.Mutex
		wg  sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(res.Errors) < 10 {
			res.Errors = append(res.Errors, fmt.Sprintf(format, args...))
		}
	}
	check := func(key string, v []byte) {
		id, _ := strconv.Atoi(key)
		if !bytes.Equal(v, value(id, 100)) {
			fail("key %s: got %.20q", key, v)
		}
	}
	ctx := context.Background()
	keys := h.job.Keys
	for g := range h.job.Goroutines {
		wg.Go(func() {
			if g%2 == 0 {
				m, err := h.cache.GetMulti(ctx, keys)
				if err != nil || len(m) != len(keys) {
					fail("GetMulti: %d values, %v", len(m), err)
				}
				for k, v := range m {
					check(k, v)
				}
				return
			}
			for i := range keys {
				k := keys[(g+i)%len(keys)]
				v, err := h.cache.Get(ctx, k)
				if err != nil {
					fail("Get %s: %v", k, err)
				}
				check(k, v)
			}
		})
	}
	wg.Wait()
	return res
}

// holder is a helper that takes the leases of every key with one GetMulti
// and never loads them: its load blocks until the process is killed.
func (h *helperChain) holder() {
	var once sync.Once
	h.hook = func(context.Context, []string) {
		once.Do(func() { say("loading") })
		select {}
	}
	h.cache.GetMulti(context.Background(), h.job.Keys)
}

// stampedeVias are the ways the stampede tests' processes reach memcached:
// directly, where the lease protocol they detect is meta, and through
// nutcracker in front of two memcached, where it is classic.
var stampedeVias = []struct {
	name     string
	proxied  bool
	protocol string // the node counter that must say 1 in every helper
}{
	{"memcached", false, "lease_protocol_meta"},
	{"nutcracker", true, "lease_protocol_classic"},
}

// stampedeRig is a memcached that takes many connections, or nutcracker in
// front of two, and a database with rows 1..100, for the stampede tests.
// It returns the address the helpers are to use.
func stampedeRig(t *testing.T, proxied bool) (string, *testenv.Database, []string) {
	t.Helper()
	mc := testenv.Memcached(t, testenv.WithArgs("-c", "16384"))
	addr := mc.Addr
	if proxied {
		addr = testenv.Nutcracker(t, fmt.Sprintf(`alpha:
  listen: 127.0.0.1:%d
  hash: fnv1a_64
  distribution: ketama
  servers:
   - %s:1 node0
   - %s:1 node1
`, testenv.FreePort(t), mc.Addr, testenv.Memcached(t).Addr)).Addr
	}
	db := testenv.MySQL(t)
	mustExec(t, db.DB, "CREATE TABLE articles (id INT NOT NULL PRIMARY KEY, body LONGBLOB NOT NULL)")
	insertRows(t, db.DB, 1, 100, 100)
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = strconv.Itoa(i + 1)
	}
	return addr, db, keys
}

func stampedeJob(t *testing.T, mode, addr string, db *testenv.Database, keys []string, goroutines int, leaseTTL time.Duration) helperJob {
	return helperJob{
		Mode: mode, Memcached: addr, DSN: db.DSN, Query: "SELECT id, body FROM articles WHERE id IN (?)",
		BoltPath: filepath.Join(t.TempDir(), "cache.db"), Keys: keys, Goroutines: goroutines,
		Leases: true, LeaseTTL: leaseTTL, LeaseWait: time.Minute, TopTTL: 10 * time.Minute, DiskTTL: time.Hour,
	}
}

// checkProtocol fails the test unless the helper's memcached node used
// the lease protocol whose counter is protocol.
func checkProtocol(t *testing.T, st tier.Stats, protocol string) {
	t.Helper()
	if len(st.Tiers) == 0 || len(st.Tiers[0].Nodes) != 1 || st.Tiers[0].Nodes[0].Counters[protocol] != 1 {
		t.Errorf("a helper's memcached tier %+v, want its node on %s", st.Tiers, protocol)
	}
}

// 8 processes × 200 goroutines ask for the same 100 cold keys at once:
// each key is loaded once in all, as the server counts.
func TestLeaseStampedeAcrossProcesses(t *testing.T) {
	for _, via := range stampedeVias {
		t.Run(via.name, func(t *testing.T) {
			addr, db, keys := stampedeRig(t, via.proxied)
			jobs := make([]helperJob, 8)
			for i := range jobs {
				jobs[i] = stampedeJob(t, "stampede", addr, db, keys, 200, 30*time.Second)
			}
			procs := startHelpers(t, jobs...)
			q0 := db.Selects(t)
			for _, p := range procs {
				p.start(t)
			}
			var keysLoaded, statements, waits, won int64
			for _, p := range procs {
				st := p.result(t).Stats
				keysLoaded += st.Loader.Keys
				statements += st.Loader.Statements
				waits += st.Leases.Waits
				won += st.Leases.Won
				if st.Leases.Timeouts != 0 || st.Leases.Fallbacks != 0 {
					t.Errorf("a helper loaded without a lease: %+v", st.Leases)
				}
				checkProtocol(t, st, via.protocol)
			}
			server := db.Selects(t) - q0
			t.Logf("8 processes × 200 goroutines: %d keys loaded in %d statements (%d at the server); %d leases won, %d waits", keysLoaded, statements, server, won, waits)
			if keysLoaded != 100 || won != 100 {
				t.Errorf("%d keys loaded under %d leases, want each of the 100 keys loaded once", keysLoaded, won)
			}
			if server != statements {
				t.Errorf("the server counted %d SELECTs, the helpers %d", server, statements)
			}
		})
	}
}

// The process holding every lease is killed mid-load: the others wait for
// the leases to expire, one of them takes each over, and each key is
// loaded once more, no more.
func TestLeaseHolderKilled(t *testing.T) {
	for _, via := range stampedeVias {
		t.Run(via.name, func(t *testing.T) {
			addr, db, keys := stampedeRig(t, via.proxied)
			holder := startHelpers(t, stampedeJob(t, "holder", addr, db, keys, 1, 2*time.Second))[0]
			holder.start(t)
			holder.expect(t, "loading")
			// The holder's leases expire soon after it dies; the others'
			// outlast their loads on a loaded machine, so that a lease
			// taken over is never taken over again.
			jobs := make([]helperJob, 3)
			for i := range jobs {
				jobs[i] = stampedeJob(t, "stampede", addr, db, keys, 20, 30*time.Second)
			}
			procs := startHelpers(t, jobs...)
			q0 := db.Selects(t)
			for _, p := range procs {
				p.start(t)
			}
			holder.kill(t)
			var keysLoaded, statements, waits int64
			for _, p := range procs {
				st := p.result(t).Stats
				keysLoaded += st.Loader.Keys
				statements += st.Loader.Statements
				waits += st.Leases.Waits
				if st.Leases.Timeouts != 0 {
					t.Errorf("a helper gave up waiting: %+v", st.Leases)
				}
				checkProtocol(t, st, via.protocol)
			}
			server := db.Selects(t) - q0
			t.Logf("after the holder died: %d keys loaded in %d statements (%d at the server), %d waits", keysLoaded, statements, server, waits)
			if keysLoaded != 100 {
				t.Errorf("%d keys loaded, want each of the 100 once", keysLoaded)
			}
			if waits == 0 {
				t.Errorf("nobody waited for the dead holder's leases")
			}
			if server != statements {
				t.Errorf("the server counted %d SELECTs, the helpers %d", server, statements)
			}
		})
	}
}
