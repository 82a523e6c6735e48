package tier

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/clocktest"
)

// memTier is an in-process Tier for unit tests. It can be told to fail, and
// counts the calls it receives so tests can check round trips.
type memTier struct {
	name string
	mu   sync.Mutex
	m    map[string]Entry
	fail atomic.Bool

	gets, multiGets, sets, adds, deletes atomic.Int64
	// beforeAdd, when set, runs before every Add (without the lock held);
	// beforeGet, before every Get and GetMulti.
	beforeAdd func(key string)
	beforeGet func()
}

var errDown = errors.New("memtier: down")

var (
	_ Tier        = (*memTier)(nil)
	_ Adder       = (*memTier)(nil)
	_ MultiGetter = (*memTier)(nil)
	_ Scanner     = (*memTier)(nil)
)

func newMemTier(name string) *memTier { return &memTier{name: name, m: make(map[string]Entry)} }

func (t *memTier) Name() string { return t.name }

func (t *memTier) Get(_ context.Context, key string) (Entry, error) {
	t.gets.Add(1)
	if t.beforeGet != nil {
		t.beforeGet()
	}
	if t.fail.Load() {
		return Entry{}, errDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[key]
	if !ok {
		return Entry{}, ErrMiss
	}
	return e, nil
}

func (t *memTier) GetMulti(_ context.Context, keys []string) (map[string]Entry, error) {
	t.multiGets.Add(1)
	if t.beforeGet != nil {
		t.beforeGet()
	}
	if t.fail.Load() {
		return nil, errDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]Entry)
	for _, k := range keys {
		if e, ok := t.m[k]; ok {
			out[k] = e
		}
	}
	return out, nil
}

func (t *memTier) Set(_ context.Context, key string, e Entry) error {
	t.sets.Add(1)
	if t.fail.Load() {
		return errDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[key] = e
	return nil
}

func (t *memTier) Add(_ context.Context, key string, e Entry) error {
	t.adds.Add(1)
	if t.beforeAdd != nil {
		t.beforeAdd(key)
	}
	if t.fail.Load() {
		return errDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[key]; ok {
		return ErrNotStored
	}
	t.m[key] = e
	return nil
}

func (t *memTier) Delete(_ context.Context, key string) error {
	t.deletes.Add(1)
	if t.fail.Load() {
		return errDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key)
	return nil
}

func (t *memTier) Scan(ctx context.Context, fn func(string, Entry) error) error {
	t.mu.Lock()
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	t.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		t.mu.Lock()
		e, ok := t.m[k]
		t.mu.Unlock()
		if !ok {
			continue
		}
		if err := fn(k, e); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (t *memTier) entry(key string) (Entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[key]
	return e, ok
}

// mapLoader is a Loader over a map that counts calls and keys, with an
// optional hook run inside every Load.
type mapLoader struct {
	mu    sync.Mutex
	rows  map[string][]byte
	calls atomic.Int64
	keys  atomic.Int64
	hook  func(ctx context.Context, keys []string) error
}

func newMapLoader(rows map[string]string) *mapLoader {
	l := &mapLoader{rows: make(map[string][]byte)}
	for k, v := range rows {
		l.rows[k] = []byte(v)
	}
	return l
}

func (l *mapLoader) Load(ctx context.Context, keys []string) (map[string][]byte, error) {
	l.calls.Add(1)
	l.keys.Add(int64(len(keys)))
	if l.hook != nil {
		if err := l.hook(ctx, keys); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string][]byte)
	for _, k := range keys {
		if v, ok := l.rows[k]; ok {
			out[k] = append([]byte(nil), v...)
		}
	}
	return out, nil
}

func (l *mapLoader) put(k, v string) {
	l.mu.Lock()
	l.rows[k] = []byte(v)
	l.mu.Unlock()
}

func newFakeClock() *clocktest.Clock { return clocktest.New(time.Unix(1_800_000_000, 0)) }

// filled waits until c's flights have written what they found into the
// tiers, and ended: they answer their callers first.
func filled(t *testing.T, c *Cache) {
	t.Helper()
	waitFor(t, func() bool {
		c.flights.mu.Lock()
		defer c.flights.mu.Unlock()
		return c.Stats().Fills.Pending == 0 && len(c.flights.calls) == 0
	})
}
