package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/loader/sqlload"
	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
)

// fillKeys is the size of BenchmarkFillSQLToBolt: a million keys, each
// loaded once.
const (
	fillKeys    = 1_000_000
	fillWorkers = 8
	fillBatch   = 500
)

// BenchmarkFillSQLToBolt loads a million keys from MariaDB through a chain
// (memcached, then bbolt with fsync on, then SQL: "memcached+bbolt"; or
// bbolt alone above SQL: "bbolt", the durable tier's share of the work),
// 8 goroutines each calling GetMulti with 500 keys, into an empty
// memcached and an empty file. It reports the rate at which keys reached the file (from the
// first GetMulti until Flush returned), the keys missing from the file
// afterwards, counted by reading every key back ("dropped", which must be
// 0), the rate of the same GetMultis straight to the loader (the SQL
// side alone), the CPU the process used per key, and the load average.
// Run with:
//
//	bash scripts/with-services.sh go test -run '^$' -bench FillSQLToBolt -benchtime 1x -count 3 -timeout 60m ./e2e/
func BenchmarkFillSQLToBolt(b *testing.B) {
	db := testenv.MySQL(b)
	mustExec(b, db.DB, "CREATE TABLE articles (id VARBINARY(64) NOT NULL PRIMARY KEY, body BLOB NOT NULL)")
	insertFillRows(b, db)
	src, err := sqlload.New(db.DB, "SELECT id, body FROM articles WHERE id IN (?)")
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, fillKeys)
	for i := range keys {
		keys[i] = coldStartKey(i)
	}
	ctx := context.Background()

	sqlStart := time.Now()
	runFill(b, keys, func(batch []string) error {
		m, err := src.Load(ctx, batch)
		if err == nil && len(m) != len(batch) {
			err = fmt.Errorf("loader returned %d of %d keys", len(m), len(batch))
		}
		return err
	})
	sqlRate := float64(fillKeys) / time.Since(sqlStart).Seconds()

	for _, withMemcached := range []bool{true, false} {
		name := map[bool]string{true: "memcached+bbolt", false: "bbolt"}[withMemcached]
		b.Run(name, func(b *testing.B) { benchFill(b, src, keys, sqlRate, withMemcached) })
	}
}

// benchFill is one variant of BenchmarkFillSQLToBolt.
func benchFill(b *testing.B, src tier.Loader, keys []string, sqlRate float64, withMemcached bool) {
	ctx := context.Background()
	var rates, dropped, cpu []float64
	for range b.N {
		var opts []tier.Option
		if withMemcached {
			mc := testenv.Memcached(b, testenv.WithMemoryMB(512))
			mcTier, err := memcached.New([]string{mc.Addr})
			if err != nil {
				b.Fatal(err)
			}
			opts = append(opts, tier.WithTier(mcTier, 10*time.Minute))
		}
		path := filepath.Join(b.TempDir(), "cache.db")
		disk, err := boltdb.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		cache, err := tier.New(src, append(opts, tier.WithTier(disk, 24*time.Hour))...)
		if err != nil {
			b.Fatal(err)
		}
		cpu0 := processCPU()
		start := time.Now()
		runFill(b, keys, func(batch []string) error {
			m, err := cache.GetMulti(ctx, batch)
			if err == nil && len(m) != len(batch) {
				err = fmt.Errorf("GetMulti returned %d of %d keys", len(m), len(batch))
			}
			return err
		})
		if err := disk.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		used := processCPU() - cpu0
		c := disk.Counters()
		if err := cache.Close(); err != nil {
			b.Fatal(err)
		}
		missing := missingFromFile(b, path, keys)
		rates = append(rates, float64(fillKeys)/took.Seconds())
		dropped = append(dropped, float64(missing))
		cpu = append(cpu, float64(used.Microseconds())/fillKeys)
		b.Logf("fill: %d keys in %v (%.0f keys/s), %d missing from the file, %.1f µs CPU/key; batches %d, dropped counter %d, adds_present %d; load average %s",
			fillKeys, took.Round(time.Millisecond), rates[len(rates)-1], missing, cpu[len(cpu)-1], c["batches_written"], c["dropped"], c["adds_present"], loadAverage())
	}
	b.ReportMetric(median(rates), "keys/s")
	b.ReportMetric(median(dropped), "dropped")
	b.ReportMetric(median(cpu), "cpu-µs/key")
	b.ReportMetric(sqlRate, "sql-keys/s")
	b.ReportMetric(0, "ns/op")
}

// runFill calls get with the keys in batches of fillBatch, from
// fillWorkers goroutines, each on its own share of the keys.
func runFill(b *testing.B, keys []string, get func(batch []string) error) {
	var (
		wg    sync.WaitGroup
		first error
		once  sync.Once
	)
	share := len(keys) / fillWorkers
	for w := range fillWorkers {
		mine := keys[w*share : (w+1)*share]
		wg.Go(func() {
			for lo := 0; lo < len(mine); lo += fillBatch {
				if err := get(mine[lo:min(lo+fillBatch, len(mine))]); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

// insertFillRows inserts the rows coldStartKey(i) → coldStartValue(i).
func insertFillRows(b *testing.B, db *testenv.Database) {
	const batch = 2000
	for lo := 0; lo < fillKeys; lo += batch {
		var sb strings.Builder
		args := make([]any, 0, 2*batch)
		sb.WriteString("INSERT INTO articles (id, body) VALUES ")
		for i := lo; i < lo+batch; i++ {
			if i > lo {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?)")
			args = append(args, coldStartKey(i), coldStartValue(i))
		}
		if _, err := db.DB.Exec(sb.String(), args...); err != nil {
			b.Fatal(err)
		}
	}
}

// missingFromFile opens the file read-only and counts the keys it lacks.
func missingFromFile(b *testing.B, path string, keys []string) int {
	disk, err := boltdb.Open(path, boltdb.WithReadOnly())
	if err != nil {
		b.Fatal(err)
	}
	defer disk.Close()
	missing := 0
	for lo := 0; lo < len(keys); lo += 1000 {
		batch := keys[lo:min(lo+1000, len(keys))]
		m, err := disk.GetMulti(context.Background(), batch)
		if err != nil {
			b.Fatal(err)
		}
		missing += len(batch) - len(m)
	}
	return missing
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage is the host's load average over 1, 5 and 15 minutes.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
