package memory

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"

	"github.com/tiercache/tiercache/tier"
)

// Tier is an in-process tier of a chain, on an otter cache. It is safe for
// concurrent use. Create it with New and Close it when done.
type Tier struct {
	cache       *otter.Cache[string, *item]
	hitsMisses  *stats.Counter
	ttl         time.Duration
	grace       time.Duration
	maxItemSize int
	now         func() time.Time
	name        string

	bytes, evictions, expirations, tooLarge atomic.Int64

	closed atomic.Bool
	// bg tracks the maintenance the cache runs on goroutines of its own,
	// so that Close can wait for it; once bgClosed, maintenance runs on
	// the caller's goroutine instead.
	bgMu     sync.Mutex
	bgClosed bool
	bg       sync.WaitGroup
}

var (
	_ tier.Tier        = (*Tier)(nil)
	_ tier.Adder       = (*Tier)(nil)
	_ tier.MultiGetter = (*Tier)(nil)
	_ tier.Counter     = (*Tier)(nil)
	_ tier.Sized       = (*Tier)(nil)
)

// item is what the cache holds for a key. It never changes once stored:
// a Set stores a new item.
type item struct {
	entry tier.Entry // entry.Value belongs to the tier
	// life is how long the tier keeps the item from when it was stored.
	life time.Duration
	// size is what the item counts against WithMaxBytes.
	size int64
}

// New returns an empty Tier.
func New(opts ...Option) (*Tier, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	t := &Tier{
		hitsMisses:  stats.NewCounter(),
		ttl:         cfg.ttl,
		grace:       cfg.grace,
		maxItemSize: int(min(int64(cfg.maxItemSize), cfg.maxBytes-EntryOverhead)),
		now:         time.Now,
		name:        cfg.name,
	}
	// Every entry weighs at least minWeight, so that no more than
	// maxEntries of them fit in maxBytes.
	var minWeight int64
	if cfg.maxEntries > 0 {
		minWeight = (cfg.maxBytes + int64(cfg.maxEntries) - 1) / int64(cfg.maxEntries)
	}
	opt := &otter.Options[string, *item]{
		MaximumWeight: uint64(cfg.maxBytes),
		Weigher: func(_ string, it *item) uint32 {
			return uint32(min(max(it.size, minWeight), int64(^uint32(0))))
		},
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *item]) time.Duration {
			return e.Value.life
		}),
		OnAtomicDeletion: t.deleted,
		StatsRecorder:    t.hitsMisses,
		Executor:         t.execute,
	}
	if cfg.clock != nil {
		t.now = cfg.clock.Now
		opt.Clock = otterClock{cfg.clock}
	}
	c, err := otter.New(opt)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidOption, err)
	}
	t.cache = c
	return t, nil
}

// Name is the tier's name in the chain's stats (WithName).
func (t *Tier) Name() string { return t.name }

// Get returns a copy of the entry stored for key, or an error wrapping
// tier.ErrMiss when there is none or it has outlived the tier's TTL. The
// value is copied so that a caller may change it; that copy is the only
// allocation of a hit.
func (t *Tier) Get(_ context.Context, key string) (tier.Entry, error) {
	if t.closed.Load() {
		return tier.Entry{}, errClosed
	}
	it, ok := t.cache.GetIfPresent(key)
	if !ok {
		return tier.Entry{}, errMiss
	}
	e := it.entry
	if e.Value != nil {
		e.Value = bytes.Clone(e.Value)
	}
	return e, nil
}

// GetMulti returns the entries of the keys the tier holds.
func (t *Tier) GetMulti(ctx context.Context, keys []string) (map[string]tier.Entry, error) {
	if t.closed.Load() {
		return nil, errClosed
	}
	out := make(map[string]tier.Entry, len(keys))
	for _, k := range keys {
		if e, err := t.Get(ctx, k); err == nil {
			out[k] = e
		}
	}
	return out, nil
}

// Set stores a copy of e for key, replacing what is there, until e's
// expiry (plus the grace of WithGrace) or the tier's TTL, whichever comes
// first. An entry that has expired already is not stored, and removes the
// old one. A value over the size limit is refused with an error wrapping
// tier.ErrTooLarge, and removes the old one too.
func (t *Tier) Set(_ context.Context, key string, e tier.Entry) error {
	if t.closed.Load() {
		return errClosed
	}
	it, err := t.item(key, e)
	if it == nil {
		t.cache.Invalidate(key)
		return err
	}
	t.bytes.Add(it.size)
	t.cache.Set(key, it)
	return nil
}

// Add stores a copy of e for key, as Set does, only when the tier holds no
// live entry for key; otherwise it returns an error wrapping
// tier.ErrNotStored. An entry that has expired already is not stored, and
// Add returns nil.
func (t *Tier) Add(_ context.Context, key string, e tier.Entry) error {
	if t.closed.Load() {
		return errClosed
	}
	it, err := t.item(key, e)
	if it == nil {
		return err
	}
	t.bytes.Add(it.size)
	if _, stored := t.cache.SetIfAbsent(key, it); !stored {
		t.bytes.Add(-it.size)
		return errNotStored
	}
	return nil
}

// item returns the item to store for e, or nil and the reason to store
// none: nil when e has expired, ErrTooLarge for a value over the limit.
func (t *Tier) item(key string, e tier.Entry) (*item, error) {
	if len(e.Value) > t.maxItemSize {
		t.tooLarge.Add(1)
		return nil, fmt.Errorf("memory: %d-byte value for %.32q, limit %d: %w", len(e.Value), key, t.maxItemSize, tier.ErrTooLarge)
	}
	life := t.ttl
	if !e.Expires.IsZero() {
		life = min(life, e.Expires.Add(t.grace).Sub(t.now()))
	}
	if life <= 0 {
		return nil, nil
	}
	if e.Value != nil {
		e.Value = bytes.Clone(e.Value)
	}
	return &item{entry: e, life: life, size: int64(len(key) + len(e.Value) + EntryOverhead)}, nil
}

// Delete removes key. It is done when Delete returns: no Get in this
// process returns the old entry afterwards.
func (t *Tier) Delete(_ context.Context, key string) error {
	if t.closed.Load() {
		return errClosed
	}
	t.cache.Invalidate(key)
	return nil
}

// Len returns about how many entries the tier holds; entries that have
// expired may count until the cache gets round to removing them.
func (t *Tier) Len() int64 { return int64(t.cache.EstimatedSize()) }

// Close drops every entry and stops the cache's maintenance. Every later
// call returns an error wrapping tier.ErrClosed.
func (t *Tier) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.cache.StopAllGoroutines()
	t.bgMu.Lock()
	t.bgClosed = true
	t.bgMu.Unlock()
	t.bg.Wait()
	t.cache.InvalidateAll()
	return nil
}

// deleted keeps the byte count and the eviction counters as the cache
// removes or replaces entries. It runs under the lock of the entry's
// bucket and must stay quick.
func (t *Tier) deleted(e otter.DeletionEvent[string, *item]) {
	t.bytes.Add(-e.Value.size)
	switch e.Cause {
	case otter.CauseOverflow:
		t.evictions.Add(1)
	case otter.CauseExpiration:
		t.expirations.Add(1)
	}
}

// execute runs the cache's maintenance on a goroutine Close waits for.
func (t *Tier) execute(fn func()) {
	t.bgMu.Lock()
	if t.bgClosed {
		t.bgMu.Unlock()
		fn()
		return
	}
	t.bg.Add(1)
	t.bgMu.Unlock()
	go func() {
		defer t.bg.Done()
		fn()
	}()
}

// otterClock shows the cache the tier's clock. It has no ticks: expired
// entries are removed as the cache is used, not on a timer.
type otterClock struct{ clk tier.Clock }

func (c otterClock) NowNano() int64                    { return c.clk.Now().UnixNano() }
func (otterClock) Tick(time.Duration) <-chan time.Time { return nil }
