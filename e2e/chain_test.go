package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
)

func TestReadThroughAndBackfill(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigConfig{rows: 100, keyType: "INT"})
	ctx := context.Background()
	q0 := r.db.Selects(t)

	v, err := r.cache.Get(ctx, "42")
	if err != nil || !bytes.Equal(v, value(42, 100)) {
		t.Fatalf("cold Get = %q, %v", v, err)
	}
	if n := r.db.Selects(t) - q0; n != 1 {
		t.Errorf("cold Get: %d SELECTs at the server, want 1", n)
	}
	filled(t, r.cache)
	// Backfilled into memcached with the envelope and the top tier's TTL.
	raw, err := testenv.RawClient(r.mc.Addr).Get("42")
	if err != nil {
		t.Fatalf("memcached after backfill: %v", err)
	}
	e, err := tier.DecodeEntry(raw.Value)
	if err != nil || !bytes.Equal(e.Value, v) {
		t.Fatalf("memcached holds %q, %v", raw.Value, err)
	}
	if left := time.Until(e.Expires); left < 9*time.Minute || left > 10*time.Minute {
		t.Errorf("memcached copy expires in %v, want about 10m", left)
	}
	// ...and into bbolt with its own TTL.
	de, err := r.disk.Get(ctx, "42")
	if err != nil {
		t.Fatalf("bbolt after backfill: %v", err)
	}
	if left := time.Until(de.Expires); left < 23*time.Hour || left > 24*time.Hour {
		t.Errorf("bbolt copy expires in %v, want about 24h", left)
	}

	q0 = r.db.Selects(t)
	for i := 0; i < 50; i++ {
		if _, err := r.cache.Get(ctx, "42"); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.db.Selects(t) - q0; n != 0 {
		t.Errorf("hot Gets: %d SELECTs at the server, want 0", n)
	}
	if h := r.cache.Stats().Tiers[0].Hits; h != 50 {
		t.Errorf("memcached hits = %d, want 50", h)
	}
}

func TestBackfillFromDiskKeepsRemainingTTL(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigConfig{rows: 1})
	ctx := context.Background()
	expires := time.Now().Add(90 * time.Second).Truncate(time.Millisecond)
	if err := r.disk.Set(ctx, "k", tier.Entry{Value: []byte("from disk"), Expires: expires}); err != nil {
		t.Fatal(err)
	}
	v, err := r.cache.Get(ctx, "k")
	if err != nil || string(v) != "from disk" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	filled(t, r.cache)
	e, err := r.mcTier.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if !e.Expires.Equal(expires) {
		t.Errorf("memcached copy expires at %v, want the disk copy's %v", e.Expires, expires)
	}
}

func TestNegativeCachingAtTheServer(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigConfig{rows: 10})
	ctx := context.Background()
	q0 := r.db.Selects(t)
	for i := 0; i < 20; i++ {
		if _, err := r.cache.Get(ctx, "no-such-row"); !errors.Is(err, tier.ErrNotFound) {
			t.Fatalf("Get: %v, want ErrNotFound", err)
		}
	}
	if n := r.db.Selects(t) - q0; n != 1 {
		t.Errorf("%d SELECTs for a missing row asked 20 times, want 1", n)
	}
}

func TestStampedeOneStatementAtTheServer(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigConfig{rows: 10, keyType: "INT"})
	ctx := context.Background()
	q0 := r.db.Selects(t)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			v, err := r.cache.Get(ctx, "7")
			if err == nil && !bytes.Equal(v, value(7, 100)) {
				err = fmt.Errorf("got %q", v)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := r.db.Selects(t) - q0; n != 1 {
		t.Errorf("1000 concurrent Gets of a cold key: %d SELECTs at the server, want 1", n)
	}
}

func TestGetMultiEndToEnd(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigConfig{rows: 1200})
	ctx := context.Background()
	keys := make([]string, 0, 1210)
	for i := 1; i <= 1200; i++ {
		keys = append(keys, fmt.Sprint(i))
	}
	keys = append(keys, "absent-1", "absent-2")
	q0 := r.db.Selects(t)
	m, err := r.cache.GetMulti(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1200 {
		t.Fatalf("len = %d, want 1200", len(m))
	}
	for i := 1; i <= 1200; i++ {
		if !bytes.Equal(m[fmt.Sprint(i)], value(i, 100)) {
			t.Fatalf("key %d = %q", i, m[fmt.Sprint(i)])
		}
	}
	if n := r.db.Selects(t) - q0; n != 3 {
		t.Errorf("%d SELECTs for 1202 cold keys, want 3 (batches of 500)", n)
	}
	filled(t, r.cache)
	q0 = r.db.Selects(t)
	before := r.cache.Stats()
	m, err = r.cache.GetMulti(ctx, keys)
	if err != nil || len(m) != 1200 {
		t.Fatalf("warm GetMulti: %d keys, %v", len(m), err)
	}
	if n := r.db.Selects(t) - q0; n != 0 {
		t.Errorf("warm GetMulti: %d SELECTs, want 0", n)
	}
	if d := r.cache.Stats().Sub(before); d.Tiers[0].Hits != 1202 {
		t.Errorf("warm GetMulti: memcached hits %d, want 1202 (negatives included)", d.Tiers[0].Hits)
	}
}

func TestGetMultiMixedGoodAndBadKeys(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigConfig{rows: 5, tierOpts: []tier.Option{tier.WithMaxKeyLen(1000)}})
	m, err := r.cache.GetMulti(context.Background(), []string{"1", string(bytes.Repeat([]byte("k"), 1001)), "2", "nope"})
	if !errors.Is(err, tier.ErrInvalidKey) {
		t.Errorf("err = %v, want ErrInvalidKey", err)
	}
	if len(m) != 2 || !bytes.Equal(m["1"], value(1, 100)) || !bytes.Equal(m["2"], value(2, 100)) {
		t.Errorf("GetMulti = %d keys, want the two good ones", len(m))
	}
}

func TestDeleteWinsOverLoadInFlight(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigConfig{rows: 3})
	ctx := context.Background()
	loading := make(chan struct{})
	proceed := make(chan struct{})
	var once sync.Once
	r.loader.setHook(func(context.Context, []string) {
		once.Do(func() {
			close(loading)
			<-proceed
		})
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.cache.Get(ctx, "2")
	}()
	<-loading
	// The load has read nothing yet; the application updates the row and
	// invalidates, then the load reads the new row... or, with a slow
	// reader, the old one. Either way no tier may keep what the load saw.
	mustExec(t, r.db.DB, "UPDATE articles SET body = ? WHERE id = ?", "v2", "2")
	if err := r.cache.Delete(ctx, "2"); err != nil {
		t.Fatal(err)
	}
	close(proceed)
	<-done
	if err := r.disk.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.mcTier.Get(ctx, "2"); !errors.Is(err, tier.ErrMiss) {
		t.Errorf("memcached after Delete: err = %v, want a miss", err)
	}
	if _, err := r.disk.Get(ctx, "2"); !errors.Is(err, tier.ErrMiss) {
		t.Errorf("bbolt after Delete: err = %v, want a miss", err)
	}
	v, err := r.cache.Get(ctx, "2")
	if err != nil || string(v) != "v2" {
		t.Errorf("Get after Delete = %q, %v; want v2", v, err)
	}
}

func TestSetAndDeleteEveryTier(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigConfig{rows: 3})
	ctx := context.Background()
	if _, err := r.cache.Get(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	filled(t, r.cache)
	mustExec(t, r.db.DB, "UPDATE articles SET body = 'new' WHERE id = '1'")
	if err := r.cache.Set(ctx, "1", []byte("new")); err != nil {
		t.Fatal(err)
	}
	for name, tr := range map[string]tier.Tier{"memcached": r.mcTier, "bbolt": r.disk} {
		e, err := tr.Get(ctx, "1")
		if err != nil || string(e.Value) != "new" {
			t.Errorf("%s after Set: %q, %v", name, e.Value, err)
		}
	}
	if err := r.cache.Delete(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	for name, tr := range map[string]tier.Tier{"memcached": r.mcTier, "bbolt": r.disk} {
		if _, err := tr.Get(ctx, "1"); !errors.Is(err, tier.ErrMiss) {
			t.Errorf("%s after Delete: %v, want a miss", name, err)
		}
	}
}

func TestSurvivesProcessRestart(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigConfig{rows: 50})
	ctx := context.Background()
	keys := make([]string, 50)
	for i := range keys {
		keys[i] = fmt.Sprint(i + 1)
	}
	if _, err := r.cache.GetMulti(ctx, keys); err != nil {
		t.Fatal(err)
	}
	if err := r.cache.Close(); err != nil {
		t.Fatal(err)
	}
	// A new process: memcached is empty too, and the bbolt file is all
	// that is left.
	r.mc.Restart()
	r2 := reopen(t, r)
	q0 := r.db.Selects(t)
	m, err := r2.cache.GetMulti(ctx, keys)
	if err != nil || len(m) != 50 {
		t.Fatalf("GetMulti after restart: %d keys, %v", len(m), err)
	}
	if n := r.db.Selects(t) - q0; n != 0 {
		t.Errorf("after a process and memcached restart: %d SELECTs, want 0", n)
	}
	if h := r2.cache.Stats().Tiers[1].Hits; h != 50 {
		t.Errorf("bbolt hits = %d, want 50", h)
	}
}
