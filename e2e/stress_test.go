package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
)

// The stale-set stress: two processes, each with its own bbolt file, over
// one memcached and one database, each both reading and invalidating the
// same keys at random.
//
// Every row's body is "v<version>". A write bumps the version in SQL,
// invalidates the key through the cache (Delete or Set of the new body, at
// random), and only then publishes the version as the key's floor, in a
// table of its own. A read first reads the key's floor, then Gets the key:
// the floor's invalidation returned before the Get began, so the Get must
// return that version or a later one. Each key has one writer across both
// processes, so versions reach the cache in order.
//
// memcached's TTL is a second, so values keep expiring and reads keep
// going down to each process's durable copy, which the other process's
// invalidations cannot reach: only the markers keep those copies from
// being served. Loads sleep up to 2ms at random to widen the races
// between them and the invalidations.

const (
	stressKeys          = 16
	stressReaders       = 6
	stressWriters       = 2
	stressReadsPerProc  = 6000
	stressMinWrites     = 1000
	stressDeadline      = 4 * time.Minute // a guard: each process stops after its reads
	stressMemcachedTTL  = time.Second
	stressDurableTTL    = time.Hour
	stressLeaseTTL      = 2 * time.Second
	stressLeaseWait     = 5 * time.Second
	stressMaxLoadSleep  = 2 * time.Millisecond
	stressMultiGetEvery = 5 // every fifth read is a GetMulti of three keys
)

func (h *helperChain) stress() helperResult {
	var (
		res        helperResult
		mu         sync.Mutex
		reads      atomic.Int64
		writes     atomic.Int64
		stop       = make(chan struct{})
		readersWG  sync.WaitGroup
		writersWG  sync.WaitGroup
		deadline   = time.Now().Add(h.job.Duration)
		violations []string
	)
	h.hook = func(context.Context, []string) {
		time.Sleep(rand.N(stressMaxLoadSleep))
	}
	fail := func(list *[]string, format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(*list) < 20 {
			*list = append(*list, fmt.Sprintf(format, args...))
		}
	}
	ctx := context.Background()
	keys := h.job.Keys
	floor := func(key string) (int64, error) {
		var v int64
		err := h.db.QueryRowContext(ctx, "SELECT ver FROM floors WHERE id = ?", key).Scan(&v)
		return v, err
	}
	version := func(v []byte) int64 {
		n, err := strconv.ParseInt(string(v[min(1, len(v)):]), 10, 64)
		if err != nil || len(v) == 0 || v[0] != 'v' {
			return -1
		}
		return n
	}
	for w := range stressWriters {
		// This writer owns the keys i with i % (procs × writers) == its slot.
		slot, slots := h.job.Index*stressWriters+w, h.job.Procs*stressWriters
		var mine []string
		for i, k := range keys {
			if i%slots == slot {
				mine = append(mine, k)
			}
		}
		writersWG.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := mine[rand.IntN(len(mine))]
				r, err := h.db.ExecContext(ctx, "UPDATE items SET body = CONCAT('v', LAST_INSERT_ID(CAST(SUBSTRING(body, 2) AS UNSIGNED) + 1)) WHERE id = ?", k)
				var ver int64
				if err == nil {
					ver, err = r.LastInsertId()
				}
				if err == nil {
					if rand.IntN(2) == 0 {
						err = h.cache.Delete(ctx, k)
					} else {
						err = h.cache.Set(ctx, k, []byte("v"+strconv.FormatInt(ver, 10)))
					}
				}
				if err == nil {
					_, err = h.db.ExecContext(ctx, "UPDATE floors SET ver = GREATEST(ver, ?) WHERE id = ?", ver, k)
				}
				if err != nil {
					fail(&res.Errors, "write %s: %v", k, err)
					return
				}
				writes.Add(1)
			}
		})
	}
	for range stressReaders {
		readersWG.Go(func() {
			for reads.Load() < int64(h.job.Ops) && time.Now().Before(deadline) {
				batch := []string{keys[rand.IntN(len(keys))]}
				if rand.IntN(stressMultiGetEvery) == 0 {
					batch = append(batch, keys[rand.IntN(len(keys))], keys[rand.IntN(len(keys))])
				}
				floors := make(map[string]int64, len(batch))
				for _, k := range batch {
					f, err := floor(k)
					if err != nil {
						fail(&res.Errors, "floor %s: %v", k, err)
						return
					}
					floors[k] = f
				}
				got := make(map[string][]byte, len(batch))
				if len(batch) == 1 {
					v, err := h.cache.Get(ctx, batch[0])
					if err != nil {
						fail(&res.Errors, "Get %s: %v", batch[0], err)
						return
					}
					got[batch[0]] = v
				} else {
					m, err := h.cache.GetMulti(ctx, batch)
					if err != nil && !errors.Is(err, tier.ErrNotFound) {
						fail(&res.Errors, "GetMulti %v: %v", batch, err)
						return
					}
					got = m
				}
				for k, f := range floors {
					v, ok := got[k]
					if n := version(v); !ok || n < f {
						fail(&violations, "key %s: read %q after version %d was invalidated", k, v, f)
					}
					reads.Add(1)
				}
			}
		})
	}
	readersWG.Wait()
	close(stop)
	writersWG.Wait()
	res.Reads, res.Writes, res.Violations = reads.Load(), writes.Load(), violations
	return res
}

func TestLeaseStaleSetStress(t *testing.T) {
	mc := testenv.Memcached(t, testenv.WithArgs("-c", "4096"))
	db := testenv.MySQL(t)
	mustExec(t, db.DB, "CREATE TABLE items (id VARCHAR(16) NOT NULL PRIMARY KEY, body VARBINARY(64) NOT NULL)")
	mustExec(t, db.DB, "CREATE TABLE floors (id VARCHAR(16) NOT NULL PRIMARY KEY, ver BIGINT NOT NULL)")
	keys := make([]string, stressKeys)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
		mustExec(t, db.DB, "INSERT INTO items VALUES (?, 'v0')", keys[i])
		mustExec(t, db.DB, "INSERT INTO floors VALUES (?, 0)", keys[i])
	}
	jobs := make([]helperJob, 2)
	for i := range jobs {
		jobs[i] = helperJob{
			Mode: "stress", Memcached: mc.Addr, DSN: db.DSN, Query: "SELECT id, body FROM items WHERE id IN (?)",
			BoltPath: filepath.Join(t.TempDir(), "cache.db"), Keys: keys, Goroutines: stressReaders + stressWriters,
			Leases: true, LeaseTTL: stressLeaseTTL, LeaseWait: stressLeaseWait,
			TopTTL: stressMemcachedTTL, DiskTTL: stressDurableTTL,
			Duration: stressDeadline, Ops: stressReadsPerProc, Index: i, Procs: len(jobs),
		}
	}
	procs := startHelpers(t, jobs...)
	for _, p := range procs {
		p.start(t)
	}
	var reads, writes int64
	var total tier.Stats
	for i, p := range procs {
		res := p.result(t)
		reads += res.Reads
		writes += res.Writes
		for _, v := range res.Violations {
			t.Errorf("process %d: %s", i, v)
		}
		st := res.Stats
		t.Logf("process %d: %d reads, %d invalidations; leases %+v; durable hits %d", i, res.Reads, res.Writes, st.Leases, st.Tiers[1].Hits)
		total.Leases.Rejected += st.Leases.Rejected
		total.Leases.Refused += st.Leases.Refused
		if len(st.Tiers) > 1 {
			total.Tiers = append(total.Tiers, st.Tiers[1])
		}
	}
	t.Logf("%d reads checked against %d invalidations across 2 processes; %d stale durable copies rejected, %d late fills refused",
		reads, writes, total.Leases.Rejected, total.Leases.Refused)
	if reads < 10_000 || writes < stressMinWrites {
		t.Errorf("%d reads and %d invalidations, want at least 10000 and %d", reads, writes, stressMinWrites)
	}
	if total.Leases.Rejected == 0 {
		t.Errorf("no durable copy was ever rejected: the stress did not reach the cross-process case")
	}
}
