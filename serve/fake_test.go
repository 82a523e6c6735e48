package serve

import (
	"context"
	"fmt"
	"sync"

	"github.com/tiercache/tiercache/tier"
)

// memTier is an in-process tier.Tier for the protocol tests and the fuzz
// target; the tests against real memcached run the same commands through
// store/memcached.
type memTier struct {
	mu sync.Mutex
	m  map[string]tier.Entry
	// fail, when set, is returned by every operation.
	fail error
}

func newMemTier() *memTier { return &memTier{m: map[string]tier.Entry{}} }

func (t *memTier) Name() string { return "mem" }

func (t *memTier) Get(_ context.Context, key string) (tier.Entry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fail != nil {
		return tier.Entry{}, t.fail
	}
	e, ok := t.m[key]
	if !ok {
		return tier.Entry{}, fmt.Errorf("mem: %q: %w", key, tier.ErrMiss)
	}
	return e, nil
}

func (t *memTier) Set(_ context.Context, key string, e tier.Entry) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fail != nil {
		return t.fail
	}
	t.m[key] = e
	return nil
}

func (t *memTier) Add(_ context.Context, key string, e tier.Entry) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fail != nil {
		return t.fail
	}
	if _, ok := t.m[key]; ok {
		return tier.ErrNotStored
	}
	t.m[key] = e
	return nil
}

func (t *memTier) Delete(_ context.Context, key string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fail != nil {
		return t.fail
	}
	delete(t.m, key)
	return nil
}

func (t *memTier) setFail(err error) {
	t.mu.Lock()
	t.fail = err
	t.mu.Unlock()
}

var (
	_ tier.Tier  = (*memTier)(nil)
	_ tier.Adder = (*memTier)(nil)
)

// ctxT shortens the fake backends' signatures.
type ctxT = context.Context
