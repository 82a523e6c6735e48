package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
)

// TestWarmupUnderWritesRestoresEveryOtherKey warms an empty memcached from
// a file of 20,000 entries while 5,000 Sets and Deletes of random keys, in
// the file or not, go through the chain. Every key none of them touched
// must be back in memcached with its value, and none that was touched may
// hold a value older than its last write: a warmup skips exactly the keys
// invalidated while it runs, not the others that share their generation
// stripes (about 70% of all keys at 5,000 writes).
func TestWarmupUnderWritesRestoresEveryOtherKey(t *testing.T) {
	t.Parallel()
	const n, writes = 20_000, 5_000
	// Generous timeouts: the test is about which keys come back, not about
	// a loaded machine's stalls.
	cs := newColdStart(t, n, 0, nil, memcached.WithTimeout(10*time.Second), memcached.WithFailureLimit(1000))
	ctx := context.Background()

	last := make(map[int]string, writes) // key → value of its last write, "" for a delete
	var mu sync.Mutex
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		<-started
		rng := rand.New(rand.NewPCG(1, 2))
		for w := range writes {
			i := rng.IntN(2 * n) // half of them keys the file does not hold
			var err error
			mu.Lock()
			if rng.IntN(2) == 0 {
				v := fmt.Sprintf("written %d", w)
				err = cs.cache.Set(ctx, coldStartKey(i), []byte(v))
				last[i] = v
			} else {
				err = cs.cache.Delete(ctx, coldStartKey(i))
				last[i] = ""
			}
			mu.Unlock()
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var once sync.Once
	st, err := cs.cache.Warmup(ctx, tier.WithWarmupRate(10_000), tier.WithWarmupProgress(time.Millisecond, func(tier.WarmupProgress) {
		once.Do(func() { close(started) })
	}))
	once.Do(func() { close(started) })
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("warmup: %+v", st)

	missing, stale := 0, 0
	for i := range 2 * n {
		e, err := cs.mcTier.Get(ctx, coldStartKey(i))
		if err != nil && !errors.Is(err, tier.ErrMiss) {
			t.Fatal(err)
		}
		v, touched := last[i]
		switch {
		case !touched && i < n && (err != nil || !bytes.Equal(e.Value, coldStartValue(i))):
			missing++
		case touched && err == nil && string(e.Value) != v:
			stale++
			if stale <= 5 {
				t.Errorf("%s holds %q after its last write %q", coldStartKey(i), e.Value, v)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d keys no write touched are not back in memcached with their value", missing)
	}
	if stale > 0 {
		t.Errorf("%d written keys hold a value older than their last write", stale)
	}
	// A key the chain wrote while the warmup ran may be scanned from the
	// durable tier's queue as well as from the file: skipped counts each
	// time, never a key nobody touched.
	if st.Skipped > 2*int64(len(last)) {
		t.Errorf("warmup skipped %d entries, more than twice the %d keys written", st.Skipped, len(last))
	}
}
