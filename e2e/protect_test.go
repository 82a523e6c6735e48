package e2e

import (
	"bufio"
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/loader/sqlload"
	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/tier"
)

// memcachedStats reads the counters of memcached's stats command.
func memcachedStats(t testing.TB, addr string) map[string]int64 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("stats\r\n")); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]int64)
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 1 && f[0] == "END" {
			return out
		}
		if len(f) == 3 && f[0] == "STAT" {
			if n, err := strconv.ParseInt(f[2], 10, 64); err == nil {
				out[f[1]] = n
			}
		}
	}
	t.Fatalf("memcached stats: %v", sc.Err())
	return nil
}

// 1,000 goroutines Get one cold key at once, twenty times over: one trip
// through the chain each time, as the servers count it. memcached runs as
// the other benchmarks run it (-t 1, its default -c 1024), the memcached
// tier with the library's defaults.
func TestColdKeyStampedeIsOneTrip(t *testing.T) {
	t.Parallel()
	for _, leases := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "leases"}[leases], func(t *testing.T) {
			t.Parallel()
			var opts []tier.Option
			if leases {
				opts = append(opts, tier.WithLeases())
			}
			r := newRig(t, rigConfig{rows: 20, keyType: "INT", mcOpts: []testenv.MemcachedOption{testenv.WithThreads(1)}, tierOpts: opts})
			ctx := context.Background()
			var allGets int64
			for trial := 1; trial <= 20; trial++ {
				key := strconv.Itoa(trial)
				q0, m0 := r.db.Selects(t), memcachedStats(t, r.mc.Addr)
				// The load waits for every caller to have arrived, so that
				// the 1,000 are concurrent however the goroutines are
				// scheduled on a busy machine.
				joined := r.cache.Stats().SharedWaits + 999
				r.loader.setHook(func(context.Context, []string) {
					waitFor(t, "every caller", func() bool { return r.cache.Stats().SharedWaits >= joined })
				})
				start := make(chan struct{})
				var wg sync.WaitGroup
				var failed atomic.Int64
				for range 1000 {
					wg.Go(func() {
						<-start
						v, err := r.cache.Get(ctx, key)
						if err != nil || !bytes.Equal(v, value(trial, 100)) {
							if failed.Add(1) == 1 {
								t.Errorf("trial %d: Get = %.20q, %v", trial, v, err)
							}
						}
					})
				}
				close(start)
				wg.Wait()
				waitFor(t, "the fills", func() bool { return r.cache.Stats().Fills.Pending == 0 })
				m1 := memcachedStats(t, r.mc.Addr)
				gets, sets := m1["cmd_get"]-m0["cmd_get"], m1["cmd_set"]-m0["cmd_set"]
				if selects := r.db.Selects(t) - q0; selects != 1 || sets != 1 {
					t.Errorf("trial %d: %d SELECTs, %d memcached sets; want 1 and 1", trial, selects, sets)
				}
				wantGets := int64(1)
				if leases {
					wantGets = 2 // the lookup and the lease
				}
				if gets != wantGets {
					t.Errorf("trial %d: %d memcached gets, want %d", trial, gets, wantGets)
				}
				allGets += gets
			}
			st := r.cache.Stats()
			for _, n := range st.Tiers[0].Nodes {
				if n.State != "up" || n.Counters["ejections"] != 0 {
					t.Errorf("node %s: %s, %d ejections; want up, never ejected", n.Addr, n.State, n.Counters["ejections"])
				}
			}
			t.Logf("20 trials × 1000 goroutines: %d memcached gets, %d flights, %d shared waits, %d lease requests, %d memcached errors",
				allGets, st.Flights, st.SharedWaits, st.Leases.Requests, st.Tiers[0].Errors)
		})
	}
}

// A source query that takes 30 s, asked for by callers that wait 100 ms
// each, on many keys, for a few seconds: the server never runs more of the
// statements than the chain's load bound, abandoned loads past the load
// timeout are killed there, and nothing is refused for lack of
// connections.
func TestSlowSourceBoundsServerThreads(t *testing.T) {
	t.Parallel()
	const bound = 4
	db := testenv.MySQL(t)
	mustExec(t, db.DB, "CREATE TABLE articles (id INT NOT NULL PRIMARY KEY, body LONGBLOB NOT NULL)")
	insertRows(t, db.DB, 1, 1000, 100)
	marker := "slow_source_" + strconv.Itoa(rand.IntN(1<<30))
	src, err := sqlload.New(db.DB, "SELECT id, IF(SLEEP(30) = 0, body, body) AS "+marker+" FROM articles WHERE id IN (?)")
	if err != nil {
		t.Fatal(err)
	}
	disk, err := boltdb.Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	mc := testenv.Memcached(t, testenv.WithThreads(1))
	cache, err := tier.New(src, tier.WithTier(mustMemcached(t, mc.Addr), time.Minute), tier.WithTier(disk, time.Hour),
		tier.WithLoadConcurrency(bound), tier.WithLoadTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()

	running := func() int {
		var n int
		if err := db.DB.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()",
			"%"+marker+"%").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var (
		wg       sync.WaitGroup
		calls    atomic.Int64
		refused  atomic.Int64
		mostSeen int
	)
	stop := time.Now().Add(4 * time.Second)
	for time.Now().Before(stop) {
		for range 10 {
			key := strconv.Itoa(rand.IntN(1000) + 1)
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				calls.Add(1)
				_, err := cache.Get(ctx, key)
				if err != nil && strings.Contains(err.Error(), "1040") {
					refused.Add(1)
				}

			})
		}
		mostSeen = max(mostSeen, running())
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	st := cache.Stats().Loader
	t.Logf("%d Gets: at most %d statements running at the server; %d statements, %d waits, %d shed, %d killed", calls.Load(), mostSeen, st.Statements, st.Waits, st.Shed, src.Stats().Kills)
	if mostSeen > bound || mostSeen == 0 {
		t.Errorf("at most %d slow statements running at the server, want between 1 and the load bound %d", mostSeen, bound)
	}
	if refused.Load() != 0 {
		t.Errorf("%d Gets refused with Error 1040", refused.Load())
	}
	if src.Stats().Kills == 0 {
		t.Error("no statement killed past the load timeout")
	}
	waitFor(t, "the killed statements to end", func() bool { return running() <= bound })
}

// MariaDB stopped for a few seconds under steady traffic of cold keys:
// the breaker keeps the attempts to a few a second, and the chain answers
// again once the server is back.
func TestMariaDBDownBreaker(t *testing.T) {
	t.Parallel()
	srv := testenv.PrivateMySQL(t)
	db := srv.Database(t)
	mustExec(t, db.DB, "CREATE TABLE articles (id INT NOT NULL PRIMARY KEY, body LONGBLOB NOT NULL)")
	insertRows(t, db.DB, 1, 100000, 20)
	sqlSrc, err := sqlload.New(db.DB, "SELECT id, body FROM articles WHERE id IN (?)")
	if err != nil {
		t.Fatal(err)
	}
	src := &countingLoader{next: sqlSrc}
	mc := testenv.Memcached(t, testenv.WithThreads(1))
	cache, err := tier.New(src, tier.WithTier(mustMemcached(t, mc.Addr), time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	var next atomic.Int64
	get := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cache.Get(ctx, strconv.FormatInt(next.Add(1), 10))
		return err
	}
	if err := get(); err != nil {
		t.Fatal(err)
	}
	var stopTraffic atomic.Bool
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for !stopTraffic.Load() {
				get()
				time.Sleep(time.Millisecond)
			}
		})
	}
	defer func() {
		stopTraffic.Store(true)
		wg.Wait()
	}()
	srv.Stop()
	down := time.Now()
	calls0 := src.calls.Load()
	time.Sleep(4 * time.Second)
	calls, secs := src.calls.Load()-calls0, time.Since(down).Seconds()
	srv.Start()
	back := time.Now()
	waitFor(t, "an answer from the source", func() bool { return get() == nil })
	st := cache.Stats().Loader
	t.Logf("down %.1fs: %d loads sent (%.1f/s), %d failed at once; answering %v after the server was back",
		secs, calls, float64(calls)/secs, st.Rejected, time.Since(back).Round(time.Millisecond))
	if limit := int64(tier.DefaultBreakerFailures + 4*secs); calls > limit {
		t.Errorf("%d loads sent to a stopped server in %.1fs, want at most %d", calls, secs, limit)
	}
	if st.Trips == 0 || st.Rejected == 0 {
		t.Errorf("loader stats %+v, want the breaker to have opened", st)
	}
}
