package tier

import (
	"context"
	"iter"
	"time"
)

// Observer is told about every call the chain makes to a tier or to the
// loader, after it returns: which tier, which operation, how long it took
// and how it ended. Package metrics turns these reports into latency
// histograms; a tracer could turn them into spans.
//
// Every field is optional: a nil hook is not called, and with no hooks the
// chain does not even read the clock. The hooks run on the goroutine that
// made the call, so they must be quick, and safe for concurrent use. Calls
// a tier makes on its own (a boltdb write-behind batch, a memcached probe)
// are not reported; neither are lease requests or scans.
type Observer struct {
	// TierCall is called after each Get, GetMulti, Set, Add, AddBulk and
	// Delete the chain makes on a tier.
	TierCall func(TierCall)
	// LoadCall is called after each Loader.Load.
	LoadCall func(LoadCall)
}

// Op names an operation on a tier, as metrics label it.
type Op string

// The operations the chain reports to an Observer.
const (
	OpGet      Op = "get"
	OpGetMulti Op = "get_multi"
	OpSet      Op = "set"
	OpAdd      Op = "add"
	OpAddBulk  Op = "add_bulk"
	OpDelete   Op = "delete"
)

// TierCall is one call the chain made on a tier.
type TierCall struct {
	// Tier is the tier's name, as in TierStats.Name.
	Tier string
	Op   Op
	// Keys is how many keys the call carried: 1, except for GetMulti (and
	// AddBulk, where it is 0: the entries are a stream).
	Keys     int
	Duration time.Duration
	// Err is what the tier returned: nil, an error wrapping ErrMiss,
	// ErrNotStored or ErrTooLarge, or a failure.
	Err error
}

// LoadCall is one Load call on the source of truth.
type LoadCall struct {
	// Keys were asked for; Found were returned.
	Keys, Found int
	Duration    time.Duration
	Err         error
}

// WithObserver makes the chain report its tier and loader calls to o.
// Calling it again replaces the observer.
func WithObserver(o Observer) Option {
	return func(c *config) error {
		c.observer = o
		return nil
	}
}

// observing reports whether hook is set, and then when the call starts.
func observing[T any](hook func(T)) (time.Time, bool) {
	if hook == nil {
		return time.Time{}, false
	}
	return time.Now(), true
}

// tierDone reports a call on t that began at start.
func (t *chainTier) tierDone(op Op, keys int, start time.Time, err error) {
	t.obs.TierCall(TierCall{Tier: t.name, Op: op, Keys: keys, Duration: time.Since(start), Err: err})
}

// The chain calls its tiers through the methods below, which report each
// call to the observer.

func (t *chainTier) get(ctx context.Context, key string) (Entry, error) {
	start, ok := observing(t.obs.TierCall)
	e, err := t.tier.Get(ctx, key)
	if ok {
		t.tierDone(OpGet, 1, start, err)
	}
	return e, err
}

func (t *chainTier) getMulti(ctx context.Context, mg MultiGetter, keys []string) (map[string]Entry, error) {
	start, ok := observing(t.obs.TierCall)
	m, err := mg.GetMulti(ctx, keys)
	if ok {
		t.tierDone(OpGetMulti, len(keys), start, err)
	}
	return m, err
}

func (t *chainTier) set(ctx context.Context, key string, e Entry) error {
	start, ok := observing(t.obs.TierCall)
	err := t.tier.Set(ctx, key, e)
	if ok {
		t.tierDone(OpSet, 1, start, err)
	}
	return err
}

// add adds through t.adder, which the caller checked is not nil.
func (t *chainTier) add(ctx context.Context, key string, e Entry) error {
	start, ok := observing(t.obs.TierCall)
	err := t.adder.Add(ctx, key, e)
	if ok {
		t.tierDone(OpAdd, 1, start, err)
	}
	return err
}

func (t *chainTier) addBulk(ctx context.Context, ba BulkAdder, entries iter.Seq2[string, Entry], done func(string, error)) error {
	start, ok := observing(t.obs.TierCall)
	err := ba.AddBulk(ctx, entries, done)
	if ok {
		t.tierDone(OpAddBulk, 0, start, err)
	}
	return err
}

func (t *chainTier) delete(ctx context.Context, key string) error {
	start, ok := observing(t.obs.TierCall)
	err := t.tier.Delete(ctx, key)
	if ok {
		t.tierDone(OpDelete, 1, start, err)
	}
	return err
}

// loadObserved runs one Load call on the loader and reports it.
func (c *Cache) loadObserved(ctx context.Context, keys []string) (map[string][]byte, error) {
	start, ok := observing(c.obs.LoadCall)
	values, err := c.loader.Load(ctx, keys)
	if ok {
		found := 0
		for _, k := range keys {
			if _, in := values[k]; in {
				found++
			}
		}
		c.obs.LoadCall(LoadCall{Keys: len(keys), Found: found, Duration: time.Since(start), Err: err})
	}
	return values, err
}
