package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/clocktest"
	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/loader/sqlload"
	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/tier"
)

func TestMemcachedKilledWhileServing(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigConfig{rows: 200})
	ctx := context.Background()
	keys := make([]string, 200)
	for i := range keys {
		keys[i] = fmt.Sprint(i + 1)
	}
	if _, err := r.cache.GetMulti(ctx, keys); err != nil {
		t.Fatal(err)
	}
	filled(t, r.cache)

	var served, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := keys[(i*8+w)%len(keys)]
				v, err := r.cache.Get(ctx, k)
				if err == nil && !bytes.Equal(v, value((i*8+w)%len(keys)+1, 100)) {
					err = fmt.Errorf("key %s: wrong value %q", k, v)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				served.Add(1)
			}
		}()
	}
	waitFor(t, "traffic before the kill", func() bool { return served.Load() > 500 })
	r.mc.Kill()
	atKill := served.Load()
	waitFor(t, "traffic after the kill", func() bool { return served.Load() > atKill+2000 })
	close(stop)
	wg.Wait()

	if n := failed.Load(); n != 0 {
		t.Fatalf("%d caller errors while memcached was down; first: %v", n, firstErr.Load())
	}
	st := r.cache.Stats()
	if st.Tiers[0].Errors == 0 {
		t.Error("memcached errors not counted")
	}
	if st.Tiers[1].Hits == 0 {
		t.Error("bbolt answered nothing")
	}
	if st.Loader.Statements != 1 {
		t.Errorf("loader statements = %d, want 1: bbolt must answer while memcached is down", st.Loader.Statements)
	}
}

func TestRestartThenWarmupCostsNoSQL(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigConfig{rows: 500})
	ctx := context.Background()
	keys := make([]string, 500)
	for i := range keys {
		keys[i] = fmt.Sprint(i + 1)
	}
	if _, err := r.cache.GetMulti(ctx, keys); err != nil {
		t.Fatal(err)
	}
	filled(t, r.cache)
	r.mc.Restart()
	q0 := r.db.Selects(t)
	ws, err := r.cache.Warmup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ws.Written != 500 {
		t.Errorf("warmup wrote %d, want 500 (%+v)", ws.Written, ws)
	}
	before := r.cache.Stats()
	m, err := r.cache.GetMulti(ctx, keys)
	if err != nil || len(m) != 500 {
		t.Fatalf("GetMulti after warmup: %d, %v", len(m), err)
	}
	if d := r.cache.Stats().Sub(before); d.Tiers[0].Hits != 500 {
		t.Errorf("memcached hits after warmup = %d, want 500", d.Tiers[0].Hits)
	}
	if n := r.db.Selects(t) - q0; n != 0 {
		t.Errorf("%d SELECTs during warmup and after, want 0", n)
	}
	again, err := r.cache.Warmup(ctx)
	if err != nil || again.Written != 0 || again.Present != 500 {
		t.Errorf("second warmup = %+v, %v; want nothing written, 500 present", again, err)
	}
}

func TestMariaDBStopped(t *testing.T) {
	t.Parallel()
	srv := testenv.PrivateMySQL(t)
	db := srv.Database(t)
	mustExec(t, db.DB, "CREATE TABLE articles (id VARCHAR(64) PRIMARY KEY, body BLOB NOT NULL)")
	mustExec(t, db.DB, "INSERT INTO articles VALUES ('old', 'kept on disk'), ('never', 'never cached')")
	src, err := sqlload.New(db.DB, "SELECT id, body FROM articles WHERE id IN (?)")
	if err != nil {
		t.Fatal(err)
	}
	clock := clocktest.New(time.Now())
	disk, err := boltdb.Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	mc := testenv.Memcached(t)
	newCache := func(opts ...tier.Option) *tier.Cache {
		mcTier := mustMemcached(t, mc.Addr)
		c, err := tier.New(src, append([]tier.Option{tier.WithTier(mcTier, time.Minute), tier.WithTier(disk, time.Hour), tier.WithClock(clock)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	strict := newCache()
	ctx := context.Background()
	if _, err := strict.Get(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	clock.Advance(2 * time.Hour) // every cached copy has expired

	_, err = strict.Get(ctx, "never")
	if !errors.Is(err, sqlload.ErrSource) {
		t.Errorf("Get with the database down: err = %v, want sqlload.ErrSource", err)
	}
	if _, err := strict.Get(ctx, "old"); err == nil {
		t.Error("expired copy served without stale-if-error")
	}
	lenient := newCache(tier.WithStaleIfError(3 * time.Hour))
	v, err := lenient.Get(ctx, "old")
	if err != nil || string(v) != "kept on disk" {
		t.Errorf("stale-if-error: Get = %q, %v", v, err)
	}
	if _, err := lenient.Get(ctx, "never"); !errors.Is(err, sqlload.ErrSource) {
		t.Errorf("stale-if-error without a copy: err = %v", err)
	}
	srv.Start()
	clock.Advance(0)
	if v, err := strict.Get(ctx, "never"); err != nil || string(v) != "never cached" {
		t.Errorf("after the database is back: Get = %q, %v", v, err)
	}
	strict.Close() // closes disk; lenient shares it and closes it again
	lenient.Close()
}

func TestBoltFileLockedByAnotherProcess(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.db")
	holder, err := boltdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	_, err = boltdb.Open(path, boltdb.WithLockTimeout(100*time.Millisecond))
	if !errors.Is(err, boltdb.ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("second Open: err = %v, want ErrLocked naming the path", err)
	}
}

func TestBoltFileCorrupted(t *testing.T) {
	t.Parallel()
	cases := map[string]func(path string) error{
		"garbage": func(path string) error {
			return os.WriteFile(path, bytes.Repeat([]byte("not a bbolt file "), 4096), 0o600)
		},
		"truncated": func(path string) error {
			s, err := boltdb.Open(path)
			if err != nil {
				return err
			}
			for i := 0; i < 2000; i++ {
				s.Set(context.Background(), fmt.Sprint(i), tier.Entry{Value: bytes.Repeat([]byte("v"), 200)})
			}
			if err := s.Close(); err != nil {
				return err
			}
			fi, err := os.Stat(path)
			if err != nil {
				return err
			}
			return os.Truncate(path, fi.Size()/3)
		},
	}
	for name, corrupt := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "c.db")
			if err := corrupt(path); err != nil {
				t.Fatal(err)
			}
			if _, err := boltdb.Open(path); !errors.Is(err, boltdb.ErrCorrupt) {
				t.Fatalf("Open: err = %v, want ErrCorrupt", err)
			}
			s, err := boltdb.Open(path, boltdb.WithQuarantineCorrupt(true))
			if err != nil {
				t.Fatalf("Open with quarantine: %v", err)
			}
			defer s.Close()
			ctx := context.Background()
			if err := s.Set(ctx, "k", tier.Entry{Value: []byte("v")}); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if e, err := s.Get(ctx, "k"); err != nil || string(e.Value) != "v" {
				t.Errorf("fresh file: Get = %q, %v", e.Value, err)
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Errorf("files moved aside: %v, want one", aside)
			}
		})
	}
}

func TestAwkwardKeysThroughTheChain(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigConfig{rows: 0})
	ctx := context.Background()
	keys := map[string]string{
		"empty":      "",
		"250 bytes":  strings.Repeat("a", 250),
		"251 bytes":  strings.Repeat("b", 251),
		"10000":      strings.Repeat("c", 10000),
		"spaces":     "key with spaces",
		"crlf":       "line\r\nbreak",
		"nul":        "nul\x00byte",
		"utf-8":      "clé-日本語-🔑",
		"control":    "\x01\x02\x7f",
		"high bytes": "\xff\xfe\x80",
	}
	for name, k := range keys {
		mustExec(t, r.db.DB, "INSERT INTO articles (id, body) VALUES (?, ?)", []byte(k), []byte("value of "+name))
	}
	all := make([]string, 0, len(keys))
	for name, k := range keys {
		all = append(all, k)
		v, err := r.cache.Get(ctx, k)
		if err != nil || string(v) != "value of "+name {
			t.Errorf("%s: cold Get = %q, %v", name, v, err)
		}
	}
	filled(t, r.cache)
	q0 := r.db.Selects(t)
	before := r.cache.Stats()
	for name, k := range keys {
		v, err := r.cache.Get(ctx, k)
		if err != nil || string(v) != "value of "+name {
			t.Errorf("%s: hot Get = %q, %v", name, v, err)
		}
	}
	m, err := r.cache.GetMulti(ctx, all)
	if err != nil || len(m) != len(keys) {
		t.Errorf("GetMulti: %d keys, %v", len(m), err)
	}
	if d := r.cache.Stats().Sub(before); d.Tiers[0].Hits != int64(2*len(keys)) {
		t.Errorf("memcached hits = %d, want %d: every key must be cacheable in memcached", d.Tiers[0].Hits, 2*len(keys))
	}
	if n := r.db.Selects(t) - q0; n != 0 {
		t.Errorf("%d SELECTs for hot awkward keys", n)
	}
}

func TestValuesAroundMemcachedItemSize(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigConfig{rows: 0})
	ctx := context.Background()
	small := bytes.Repeat([]byte("s"), 1<<20-1<<10)
	big := bytes.Repeat([]byte("B"), 1<<20+1<<10)
	mustExec(t, r.db.DB, "INSERT INTO articles (id, body) VALUES ('small', ?), ('big', ?)", small, big)

	for _, tc := range []struct {
		key       string
		want      []byte
		inMemcach bool
	}{{"small", small, true}, {"big", big, false}} {
		v, err := r.cache.Get(ctx, tc.key)
		if err != nil || !bytes.Equal(v, tc.want) {
			t.Fatalf("%s: Get = %d bytes, %v", tc.key, len(v), err)
		}
		filled(t, r.cache)
		_, err = r.mcTier.Get(ctx, tc.key)
		if got := err == nil; got != tc.inMemcach {
			t.Errorf("%s: in memcached = %v, want %v (%v)", tc.key, got, tc.inMemcach, err)
		}
		q0 := r.db.Selects(t)
		v, err = r.cache.Get(ctx, tc.key)
		if err != nil || !bytes.Equal(v, tc.want) {
			t.Fatalf("%s: second Get = %d bytes, %v", tc.key, len(v), err)
		}
		if n := r.db.Selects(t) - q0; n != 0 {
			t.Errorf("%s: second Get cost %d SELECTs; the durable tier must hold it", tc.key, n)
		}
	}
	// A value that outgrows memcached must not leave the old one behind.
	if err := r.cache.Set(ctx, "small", big); err != nil {
		t.Fatal(err)
	}
	if _, err := r.mcTier.Get(ctx, "small"); !errors.Is(err, tier.ErrMiss) {
		t.Errorf("old value left in memcached after a too-large Set: %v", err)
	}
	if v, err := r.cache.Get(ctx, "small"); err != nil || !bytes.Equal(v, big) {
		t.Errorf("Get after growing Set = %d bytes, %v", len(v), err)
	}
}
