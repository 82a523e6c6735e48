package tiertest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// ErrDown is what a Tier told to Fail returns.
var ErrDown = errors.New("tiertest: tier down")

// Tier is an in-memory tier.Tier, with every optional interface a store
// can have but leases (see LeaseTier): tier.Adder, tier.MultiGetter,
// tier.BulkAdder, tier.Scanner, tier.Sized and tier.Counter. It stores
// entries as they are given, expired or not, and returns them unchanged.
// It is safe for concurrent use. The zero value is not usable; call New.
type Tier struct {
	name     string
	maxValue int
	clock    tier.Clock

	mu sync.Mutex
	m  map[string]tier.Entry

	fail  atomic.Pointer[error]
	calls [opCount]atomic.Int64
}

// Op is an operation a Tier counts.
type Op int

// The operations Calls reports.
const (
	Get Op = iota
	GetMulti
	Set
	Add
	AddBulk
	Delete
	Scan
	opCount
)

var opNames = [opCount]string{"get", "get_multi", "set", "add", "add_bulk", "delete", "scan"}

// String returns the operation's name, as a counter name.
func (o Op) String() string { return opNames[o] }

// systemClock is the wall clock, the default of WithClock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// WithClock sets the clock Add judges expiry by. Default the wall clock.
func WithClock(c tier.Clock) Option {
	return func(t *Tier) error {
		if c == nil {
			return errors.New("tiertest: WithClock: nil clock")
		}
		t.clock = c
		return nil
	}
}

// Option configures a Tier.
type Option func(*Tier) error

// WithMaxValueSize makes the tier refuse values longer than n bytes with
// tier.ErrTooLarge, as memcached refuses items over its item size.
func WithMaxValueSize(n int) Option {
	return func(t *Tier) error {
		if n < 1 {
			return fmt.Errorf("tiertest: WithMaxValueSize: %d, want at least 1", n)
		}
		t.maxValue = n
		return nil
	}
}

var (
	_ tier.Tier        = (*Tier)(nil)
	_ tier.Adder       = (*Tier)(nil)
	_ tier.MultiGetter = (*Tier)(nil)
	_ tier.BulkAdder   = (*Tier)(nil)
	_ tier.Scanner     = (*Tier)(nil)
	_ tier.Sized       = (*Tier)(nil)
	_ tier.Counter     = (*Tier)(nil)
)

// New returns an empty Tier called name (its name in the chain's Stats).
func New(name string, opts ...Option) (*Tier, error) {
	t := &Tier{name: name, clock: systemClock{}, m: make(map[string]tier.Entry)}
	for _, o := range opts {
		if err := o(t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// MustNew is New for options known to be valid, as in tests and examples;
// it panics on an invalid one.
func MustNew(name string, opts ...Option) *Tier {
	t, err := New(name, opts...)
	if err != nil {
		panic(err)
	}
	return t
}

// Name returns the tier's name.
func (t *Tier) Name() string { return t.name }

// Fail makes every later operation fail with an error wrapping err, or
// ErrDown when err is nil, until Recover.
func (t *Tier) Fail(err error) {
	if err == nil {
		err = ErrDown
	}
	t.fail.Store(&err)
}

// Recover undoes Fail: operations work again.
func (t *Tier) Recover() { t.fail.Store(nil) }

// Calls returns how many times op was called, failed calls included.
func (t *Tier) Calls(op Op) int64 { return t.calls[op].Load() }

// Entry returns what the tier holds for key, without counting a call.
func (t *Tier) Entry(key string) (tier.Entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[key]
	return e, ok
}

// begin counts a call of op and returns the error it must fail with, if any.
func (t *Tier) begin(op Op) error {
	t.calls[op].Add(1)
	if err := t.fail.Load(); err != nil {
		return fmt.Errorf("tiertest: %s: %w", op, *err)
	}
	return nil
}

// Get implements tier.Tier.
func (t *Tier) Get(_ context.Context, key string) (tier.Entry, error) {
	if err := t.begin(Get); err != nil {
		return tier.Entry{}, err
	}
	if e, ok := t.Entry(key); ok {
		return e, nil
	}
	return tier.Entry{}, fmt.Errorf("tiertest: get %q: %w", key, tier.ErrMiss)
}

// GetMulti implements tier.MultiGetter.
func (t *Tier) GetMulti(_ context.Context, keys []string) (map[string]tier.Entry, error) {
	if err := t.begin(GetMulti); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]tier.Entry, len(keys))
	for _, k := range keys {
		if e, ok := t.m[k]; ok {
			out[k] = e
		}
	}
	return out, nil
}

func (t *Tier) tooLarge(key string, e tier.Entry) error {
	if t.maxValue > 0 && len(e.Value) > t.maxValue {
		return fmt.Errorf("tiertest: %q: %d bytes: %w", key, len(e.Value), tier.ErrTooLarge)
	}
	return nil
}

// Set implements tier.Tier. A value too large for the tier removes the
// key, as a store that cannot take the new value must not keep the old.
func (t *Tier) Set(_ context.Context, key string, e tier.Entry) error {
	if err := t.begin(Set); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.tooLarge(key, e); err != nil {
		delete(t.m, key)
		return err
	}
	t.m[key] = e
	return nil
}

// Add implements tier.Adder. As with memcached's add, an expired entry
// counts as absent.
func (t *Tier) Add(_ context.Context, key string, e tier.Entry) error {
	if err := t.begin(Add); err != nil {
		return err
	}
	return t.add(key, e)
}

func (t *Tier) add(key string, e tier.Entry) error {
	if err := t.tooLarge(key, e); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.m[key]; ok && !old.Expired(t.clock.Now()) {
		return fmt.Errorf("tiertest: add %q: %w", key, tier.ErrNotStored)
	}
	t.m[key] = e
	return nil
}

// AddBulk implements tier.BulkAdder, one add at a time.
func (t *Tier) AddBulk(ctx context.Context, entries iter.Seq2[string, tier.Entry], done func(string, error)) error {
	if err := t.begin(AddBulk); err != nil {
		return err
	}
	for k, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		e.Value = append([]byte(nil), e.Value...) // the sequence may reuse it
		done(k, t.add(k, e))
	}
	return nil
}

// Delete implements tier.Tier.
func (t *Tier) Delete(_ context.Context, key string) error {
	if err := t.begin(Delete); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key)
	return nil
}

// Scan implements tier.Scanner, in key order, without holding the lock
// while fn runs.
func (t *Tier) Scan(ctx context.Context, fn func(string, tier.Entry) error) error {
	if err := t.begin(Scan); err != nil {
		return err
	}
	t.mu.Lock()
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	t.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, ok := t.Entry(k)
		if !ok {
			continue
		}
		if err := fn(k, e); err != nil {
			return err
		}
	}
	return nil
}

// Len implements tier.Sized.
func (t *Tier) Len() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int64(len(t.m))
}

// Counters implements tier.Counter: the calls of each operation, and the
// entries held.
func (t *Tier) Counters() map[string]int64 {
	out := map[string]int64{"entries": t.Len()}
	for op := range opCount {
		out[op.String()+"_calls"] = t.Calls(op)
	}
	return out
}
