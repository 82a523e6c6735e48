package metrics

import (
	"context"
	"io"
	"iter"
	"time"

	"github.com/tiercache/tiercache/tier"
)

//go:generate go run gen_instrument.go

// InstrumentTier returns t wrapped so that every Get, GetMulti, Set, Add
// and Delete is timed into tm, labelled with t's name (its Name method) or
// "tier" when it has none. The result has exactly the optional interfaces t
// has (see the package documentation); Scan, Counters, NodeStats and the
// lease calls (tier.Leaser) are forwarded untimed; AddBulk is timed as one
// operation, add_bulk.
func InstrumentTier(t tier.Tier, tm *Timings) tier.Tier {
	name := "tier"
	if n, ok := t.(interface{ Name() string }); ok && n.Name() != "" {
		name = n.Name()
	}
	i := &instrumented{
		inner:  t,
		get:    tm.opTimer(name, "get", "hit", "miss"),
		multi:  tm.opTimer(name, "get_multi", "ok"),
		set:    tm.opTimer(name, "set", "ok", "too_large"),
		add:    tm.opTimer(name, "add", "ok", "not_stored", "too_large"),
		bulk:   tm.opTimer(name, "add_bulk", "ok"),
		delete: tm.opTimer(name, "delete", "ok"),
	}
	var mask capability
	if _, ok := t.(tier.Adder); ok {
		mask |= canAdd
	}
	if _, ok := t.(tier.MultiGetter); ok {
		mask |= canGetMulti
	}
	if _, ok := t.(tier.Scanner); ok {
		mask |= canScan
	}
	if _, ok := t.(tier.Counter); ok {
		mask |= canCount
	}
	if _, ok := t.(tier.NodeReporter); ok {
		mask |= canReportNodes
	}
	if _, ok := t.(tier.HotScanner); ok {
		mask |= canScanHot
	}
	if _, ok := t.(tier.Sized); ok {
		mask |= canSize
	}
	if _, ok := t.(tier.BulkAdder); ok {
		mask |= canAddBulk
	}
	if _, ok := t.(tier.RestartWatcher); ok {
		mask |= canWatchRestarts
	}
	if _, ok := t.(tier.Leaser); ok {
		mask |= canLease
	}
	return wrapTier(i, mask)
}

// capability is a set of optional interfaces, one bit each.
type capability uint16

const (
	canAdd capability = 1 << iota
	canGetMulti
	canScan
	canCount
	canReportNodes
	canScanHot
	canSize
	canAddBulk
	canWatchRestarts
	canLease
	capabilityCount = iota
)

// instrumented is the part of every wrapped tier that is always there. The
// optional interfaces are added around it by wrapTier, from the small
// types below, one per interface.
type instrumented struct {
	inner                              tier.Tier
	get, multi, set, add, delete, bulk opTimer
}

func (i *instrumented) Get(ctx context.Context, key string) (tier.Entry, error) {
	start := time.Now()
	e, err := i.inner.Get(ctx, key)
	i.get.observe(start, err)
	return e, err
}

func (i *instrumented) Set(ctx context.Context, key string, e tier.Entry) error {
	start := time.Now()
	err := i.inner.Set(ctx, key, e)
	i.set.observe(start, err)
	return err
}

func (i *instrumented) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := i.inner.Delete(ctx, key)
	i.delete.observe(start, err)
	return err
}

// Name returns the wrapped tier's name, or "" when it has none, which the
// chain treats as no name.
func (i *instrumented) Name() string {
	if n, ok := i.inner.(interface{ Name() string }); ok {
		return n.Name()
	}
	return ""
}

// Close closes the wrapped tier when it has a Close method.
func (i *instrumented) Close() error {
	if c, ok := i.inner.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Unwrap returns the tier that i wraps.
func (i *instrumented) Unwrap() tier.Tier { return i.inner }

type adder struct{ i *instrumented }

func (a adder) Add(ctx context.Context, key string, e tier.Entry) error {
	start := time.Now()
	err := a.i.inner.(tier.Adder).Add(ctx, key, e)
	a.i.add.observe(start, err)
	return err
}

type multiGetter struct{ i *instrumented }

func (m multiGetter) GetMulti(ctx context.Context, keys []string) (map[string]tier.Entry, error) {
	start := time.Now()
	found, err := m.i.inner.(tier.MultiGetter).GetMulti(ctx, keys)
	m.i.multi.observe(start, err)
	return found, err
}

type scanner struct{ i *instrumented }

func (s scanner) Scan(ctx context.Context, fn func(key string, e tier.Entry) error) error {
	return s.i.inner.(tier.Scanner).Scan(ctx, fn)
}

type hotScanner struct{ i *instrumented }

func (s hotScanner) ScanHot(ctx context.Context, fn func(key string, e tier.Entry) error) error {
	return s.i.inner.(tier.HotScanner).ScanHot(ctx, fn)
}

type sized struct{ i *instrumented }

func (s sized) Len() int64 { return s.i.inner.(tier.Sized).Len() }

type bulkAdder struct{ i *instrumented }

// AddBulk times the whole call, not each entry.
func (b bulkAdder) AddBulk(ctx context.Context, entries iter.Seq2[string, tier.Entry], done func(key string, err error)) error {
	start := time.Now()
	err := b.i.inner.(tier.BulkAdder).AddBulk(ctx, entries, done)
	b.i.bulk.observe(start, err)
	return err
}

type restartWatcher struct{ i *instrumented }

func (r restartWatcher) Restarts() <-chan tier.Restart {
	return r.i.inner.(tier.RestartWatcher).Restarts()
}

type leaser struct{ i *instrumented }

func (l leaser) Lease(ctx context.Context, keys []string, req tier.LeaseRequest) (map[string]tier.Lease, error) {
	return l.i.inner.(tier.Leaser).Lease(ctx, keys, req)
}

func (l leaser) Fill(ctx context.Context, key string, lease tier.Lease, w tier.LeaseWrite) error {
	return l.i.inner.(tier.Leaser).Fill(ctx, key, lease, w)
}

func (l leaser) Release(ctx context.Context, key string, lease tier.Lease) error {
	return l.i.inner.(tier.Leaser).Release(ctx, key, lease)
}

func (l leaser) Invalidate(ctx context.Context, key string, w tier.LeaseWrite) error {
	return l.i.inner.(tier.Leaser).Invalidate(ctx, key, w)
}

type counter struct{ i *instrumented }

func (c counter) Counters() map[string]int64 { return c.i.inner.(tier.Counter).Counters() }

type nodeReporter struct{ i *instrumented }

func (n nodeReporter) NodeStats() []tier.NodeStats { return n.i.inner.(tier.NodeReporter).NodeStats() }

// Unwrap returns the tier inside t when t was made by InstrumentTier, and t
// otherwise. A program that needs the concrete store back (to call
// boltdb's RunGC, say) unwraps first.
func Unwrap(t tier.Tier) tier.Tier {
	if u, ok := t.(interface{ Unwrap() tier.Tier }); ok {
		return u.Unwrap()
	}
	return t
}

// InstrumentLoader returns l wrapped so that every Load is timed into tm,
// and its number of keys recorded. The result closes l on Close when l has
// a Close method (the chain closes its loader), and does nothing
// otherwise.
func InstrumentLoader(l tier.Loader, tm *Timings) tier.Loader {
	return &instrumentedLoader{
		inner:  l,
		ok:     tm.loader.WithLabelValues("ok"),
		failed: tm.loader.WithLabelValues("error"),
		batch:  tm.batch,
	}
}

type instrumentedLoader struct {
	inner             tier.Loader
	ok, failed, batch interface{ Observe(float64) }
}

func (l *instrumentedLoader) Load(ctx context.Context, keys []string) (map[string][]byte, error) {
	start := time.Now()
	values, err := l.inner.Load(ctx, keys)
	d := time.Since(start).Seconds()
	if err != nil {
		l.failed.Observe(d)
	} else {
		l.ok.Observe(d)
	}
	l.batch.Observe(float64(len(keys)))
	return values, err
}

// Close closes the wrapped loader when it has a Close method.
func (l *instrumentedLoader) Close() error {
	if c, ok := l.inner.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Unwrap returns the loader that l wraps.
func (l *instrumentedLoader) Unwrap() tier.Loader { return l.inner }
