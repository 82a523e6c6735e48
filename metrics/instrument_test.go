package metrics

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"iter"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/tiercache/tiercache/tier"
)

// memTier is an in-memory tier with every optional interface, counting the
// calls that reach it.
type memTier struct {
	mu      sync.Mutex
	entries map[string]tier.Entry
	calls   map[string]int
	closed  bool
	name    string
}

func newMemTier(name string) *memTier {
	return &memTier{entries: map[string]tier.Entry{}, calls: map[string]int{}, name: name}
}

func (m *memTier) call(op string) {
	m.mu.Lock()
	m.calls[op]++
	m.mu.Unlock()
}

func (m *memTier) count(op string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[op]
}

func (m *memTier) Get(_ context.Context, key string) (tier.Entry, error) {
	m.call("Get")
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok {
		return tier.Entry{}, tier.ErrMiss
	}
	return e, nil
}

func (m *memTier) Set(_ context.Context, key string, e tier.Entry) error {
	m.call("Set")
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries[key] = e
	return nil
}

func (m *memTier) Delete(_ context.Context, key string) error {
	m.call("Delete")
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, key)
	return nil
}

func (m *memTier) Add(_ context.Context, key string, e tier.Entry) error {
	m.call("Add")
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.entries[key]; ok {
		return tier.ErrNotStored
	}
	m.entries[key] = e
	return nil
}

func (m *memTier) GetMulti(_ context.Context, keys []string) (map[string]tier.Entry, error) {
	m.call("GetMulti")
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]tier.Entry{}
	for _, k := range keys {
		if e, ok := m.entries[k]; ok {
			out[k] = e
		}
	}
	return out, nil
}

func (m *memTier) snapshot() map[string]tier.Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]tier.Entry, len(m.entries))
	for k, e := range m.entries {
		out[k] = e
	}
	return out
}

func (m *memTier) Scan(_ context.Context, fn func(string, tier.Entry) error) error {
	m.call("Scan")
	for k, e := range m.snapshot() {
		if err := fn(k, e); err != nil {
			return err
		}
	}
	return nil
}

func (m *memTier) ScanHot(ctx context.Context, fn func(string, tier.Entry) error) error {
	m.call("ScanHot")
	for k, e := range m.snapshot() {
		if err := fn(k, e); err != nil {
			return err
		}
	}
	return nil
}

func (m *memTier) Len() int64 {
	m.call("Len")
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.entries))
}

func (m *memTier) AddBulk(ctx context.Context, entries iter.Seq2[string, tier.Entry], done func(string, error)) error {
	m.call("AddBulk")
	for k, e := range entries {
		done(k, m.Add(ctx, k, e))
	}
	return nil
}

func (m *memTier) Restarts() <-chan tier.Restart {
	m.call("Restarts")
	return nil
}

func (m *memTier) Lease(context.Context, []string, tier.LeaseRequest) (map[string]tier.Lease, error) {
	m.call("Lease")
	return nil, nil
}

func (m *memTier) Fill(context.Context, string, tier.Lease, tier.LeaseWrite) error {
	m.call("Fill")
	return nil
}

func (m *memTier) Release(context.Context, string, tier.Lease) error {
	m.call("Release")
	return nil
}

func (m *memTier) Invalidate(context.Context, string, tier.LeaseWrite) error {
	m.call("Invalidate")
	return nil
}

func (m *memTier) Counters() map[string]int64 {
	m.call("Counters")
	return map[string]int64{"queue_depth": 3, "gc_runs": 7}
}

func (m *memTier) NodeStats() []tier.NodeStats {
	m.call("NodeStats")
	return []tier.NodeStats{
		{Name: "cache-a", Addr: "127.0.0.1:1", State: "up", Counters: map[string]int64{"requests": 10, "errors": 1, "timeouts": 1, "ejections": 2, "connections": 4, "hits": 9}},
		{Name: "cache-b", Addr: "127.0.0.1:2", State: "down", Counters: map[string]int64{"requests": 5, "ejections": 1}},
	}
}

func (m *memTier) Name() string { return m.name }

func (m *memTier) Close() error {
	m.call("Close")
	return nil
}

// capabilities returns the optional interfaces t has, as a capability set,
// checked by type assertion independently of the code under test.
func capabilities(t tier.Tier) capability {
	var c capability
	checks := []bool{
		is[tier.Adder](t), is[tier.MultiGetter](t), is[tier.Scanner](t), is[tier.Counter](t),
		is[tier.NodeReporter](t), is[tier.HotScanner](t), is[tier.Sized](t), is[tier.BulkAdder](t),
		is[tier.RestartWatcher](t), is[tier.Leaser](t),
	}
	for bit, ok := range checks {
		if ok {
			c |= 1 << bit
		}
	}
	return c
}

func is[I any](t tier.Tier) bool {
	_, ok := t.(I)
	return ok
}

// TestInstrumentTierKeepsInterfaces wraps tiers with every combination of
// optional interfaces and checks that the wrapper has the same ones, no
// more and no fewer, and that each method reaches the wrapped tier.
func TestInstrumentTierKeepsInterfaces(t *testing.T) {
	t.Parallel()
	tm := NewTimings()
	ctx := context.Background()
	for mask := capability(0); mask < 1<<capabilityCount; mask++ {
		mem := newMemTier("mem")
		// A tier with exactly the interfaces in mask: the full tier behind
		// a shape-limiting wrapper, itself checked first.
		inner := wrapTier(&instrumented{inner: mem, get: tm.opTimer("x", "get", "hit", "miss"),
			multi: tm.opTimer("x", "m", "ok"), set: tm.opTimer("x", "s", "ok"), add: tm.opTimer("x", "a", "ok"),
			delete: tm.opTimer("x", "d", "ok"), bulk: tm.opTimer("x", "b", "ok")}, mask)
		if got := capabilities(inner); got != mask {
			t.Fatalf("wrapTier(%010b) has interfaces %010b", mask, got)
		}
		wrapped := InstrumentTier(inner, tm)
		if got := capabilities(wrapped); got != mask {
			t.Fatalf("InstrumentTier of a tier with interfaces %010b has %010b", mask, got)
		}
		if n := wrapped.(interface{ Name() string }).Name(); n != "mem" {
			t.Fatalf("Name = %q, want the wrapped tier's", n)
		}
		if Unwrap(wrapped) != inner {
			t.Fatalf("Unwrap did not return the wrapped tier")
		}
		_ = wrapped.Set(ctx, "k", tier.Entry{Value: []byte("v")})
		_, _ = wrapped.Get(ctx, "k")
		_ = wrapped.Delete(ctx, "k")
		want := map[string]int{"Set": 1, "Get": 1, "Delete": 1}
		calls := map[capability]func(){
			canAdd:           func() { _ = wrapped.(tier.Adder).Add(ctx, "a", tier.Entry{}) },
			canGetMulti:      func() { _, _ = wrapped.(tier.MultiGetter).GetMulti(ctx, []string{"a"}) },
			canScan:          func() { _ = wrapped.(tier.Scanner).Scan(ctx, func(string, tier.Entry) error { return nil }) },
			canCount:         func() { _ = wrapped.(tier.Counter).Counters() },
			canReportNodes:   func() { _ = wrapped.(tier.NodeReporter).NodeStats() },
			canScanHot:       func() { _ = wrapped.(tier.HotScanner).ScanHot(ctx, func(string, tier.Entry) error { return nil }) },
			canSize:          func() { _ = wrapped.(tier.Sized).Len() },
			canAddBulk:       func() { _ = wrapped.(tier.BulkAdder).AddBulk(ctx, func(func(string, tier.Entry) bool) {}, nil) },
			canWatchRestarts: func() { _ = wrapped.(tier.RestartWatcher).Restarts() },
			canLease: func() {
				l := wrapped.(tier.Leaser)
				_, _ = l.Lease(ctx, []string{"a"}, tier.LeaseRequest{})
				_ = l.Fill(ctx, "a", tier.Lease{}, tier.LeaseWrite{})
				_ = l.Release(ctx, "a", tier.Lease{})
				_ = l.Invalidate(ctx, "a", tier.LeaseWrite{})
			},
		}
		names := map[capability]string{canAdd: "Add", canGetMulti: "GetMulti", canScan: "Scan", canCount: "Counters",
			canReportNodes: "NodeStats", canScanHot: "ScanHot", canSize: "Len", canAddBulk: "AddBulk", canWatchRestarts: "Restarts", canLease: "Lease"}
		for c, call := range calls {
			if mask&c != 0 {
				call()
				want[names[c]]++
			}
		}
		if mask&canLease != 0 {
			for _, op := range []string{"Fill", "Release", "Invalidate"} {
				want[op]++
			}
		}
		for op, n := range want {
			if got := mem.count(op); got != n {
				t.Fatalf("mask %010b: %s reached the tier %d times, want %d", mask, op, got, n)
			}
		}
		if err := wrapped.(interface{ Close() error }).Close(); err != nil || mem.count("Close") != 1 {
			t.Fatalf("Close = %v, reached the tier %d times", err, mem.count("Close"))
		}
	}
}

// TestEveryOptionalInterfaceIsKept fails when package tier grows an
// optional interface that InstrumentTier does not know: a wrapper that
// hid it would change what the chain does with the tier.
func TestEveryOptionalInterfaceIsKept(t *testing.T) {
	t.Parallel()
	kept := []string{"Adder", "MultiGetter", "Scanner", "Counter", "NodeReporter", "HotScanner", "Sized", "BulkAdder", "RestartWatcher", "Leaser"}
	// MultiFiller is a Leaser's bulk fill: a wrapped Leaser hides it, and
	// the chain then fills one key at a time, as it does for a leasing tier
	// without it.
	notTierCapabilities := []string{"Tier", "Loader", "Clock", "Codec", "MultiFiller"}
	files, err := filepath.Glob(filepath.Join("..", "tier", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("tier sources: %v %v", files, err)
	}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.TYPE {
				continue
			}
			for _, spec := range gen.Specs {
				ts := spec.(*ast.TypeSpec)
				if _, isInterface := ts.Type.(*ast.InterfaceType); !isInterface || !ts.Name.IsExported() {
					continue
				}
				name := ts.Name.Name
				if !slices.Contains(kept, name) && !slices.Contains(notTierCapabilities, name) {
					t.Errorf("%s: tier.%s is new: teach InstrumentTier (gen_instrument.go) to keep it, or list it here as not a tier capability", fset.Position(ts.Pos()), name)
				}
			}
		}
	}
	if capabilityCount != len(kept) {
		t.Errorf("capabilityCount = %d, want %d", capabilityCount, len(kept))
	}
}

func TestInstrumentTierTimes(t *testing.T) {
	t.Parallel()
	tm := NewTimings()
	mem := newMemTier("mem")
	wrapped := InstrumentTier(mem, tm)
	ctx := context.Background()
	_, _ = wrapped.Get(ctx, "absent")
	_ = wrapped.Set(ctx, "k", tier.Entry{Value: []byte("v")})
	_, _ = wrapped.Get(ctx, "k")
	_, _ = wrapped.Get(ctx, "k")
	_ = wrapped.(tier.Adder).Add(ctx, "k", tier.Entry{})
	_, _ = wrapped.(tier.MultiGetter).GetMulti(ctx, []string{"k"})

	cases := []struct {
		op, result string
		want       int
	}{
		{"get", "hit", 2}, {"get", "miss", 1}, {"set", "ok", 1}, {"add", "not_stored", 1}, {"get_multi", "ok", 1}, {"delete", "ok", 0},
	}
	for _, c := range cases {
		h := tm.tier.WithLabelValues("mem", c.op, c.result).(prometheus.Histogram)
		if got := histogramCount(t, h); got != c.want {
			t.Errorf("%s/%s observed %d times, want %d", c.op, c.result, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(tm, "tiercache_tier_duration_seconds"); n == 0 {
		t.Error("no tier duration series collected")
	}
}

func TestInstrumentLoader(t *testing.T) {
	t.Parallel()
	tm := NewTimings()
	fail := errors.New("boom")
	closed := false
	src := closingLoader{
		load: func(_ context.Context, keys []string) (map[string][]byte, error) {
			if keys[0] == "bad" {
				return nil, fail
			}
			return map[string][]byte{keys[0]: []byte("v")}, nil
		},
		close: func() error { closed = true; return nil },
	}
	l := InstrumentLoader(src, tm)
	if _, err := l.Load(context.Background(), []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Load(context.Background(), []string{"bad"}); !errors.Is(err, fail) {
		t.Fatalf("Load = %v, want the loader's error", err)
	}
	if got := histogramCount(t, tm.loader.WithLabelValues("ok").(prometheus.Histogram)); got != 1 {
		t.Errorf("ok loads observed %d, want 1", got)
	}
	if got := histogramCount(t, tm.loader.WithLabelValues("error").(prometheus.Histogram)); got != 1 {
		t.Errorf("failed loads observed %d, want 1", got)
	}
	if err := l.(interface{ Close() error }).Close(); err != nil || !closed {
		t.Fatalf("Close = %v, closed the loader: %v", err, closed)
	}
	// A loader without Close: the wrapper's Close does nothing.
	plain := InstrumentLoader(tier.LoaderFunc(src.load), tm)
	if err := plain.(interface{ Close() error }).Close(); err != nil {
		t.Fatal(err)
	}
}

type closingLoader struct {
	load  func(context.Context, []string) (map[string][]byte, error)
	close func() error
}

func (l closingLoader) Load(ctx context.Context, keys []string) (map[string][]byte, error) {
	return l.load(ctx, keys)
}
func (l closingLoader) Close() error { return l.close() }

func histogramCount(t *testing.T, h prometheus.Histogram) int {
	t.Helper()
	m := &dto.Metric{}
	if err := h.Write(m); err != nil {
		t.Fatal(err)
	}
	return int(m.GetHistogram().GetSampleCount())
}

// TestChainThroughInstrumentedTiers checks that the chain behaves the same
// through the decorators: backfill adds instead of setting, warmup finds
// the scanner below.
func TestChainThroughInstrumentedTiers(t *testing.T) {
	t.Parallel()
	tm := NewTimings()
	top, bottom := newMemTier("top"), newMemTier("bottom")
	src := tier.LoaderFunc(func(_ context.Context, keys []string) (map[string][]byte, error) {
		out := map[string][]byte{}
		for _, k := range keys {
			out[k] = []byte("value of " + k)
		}
		return out, nil
	})
	cache, err := tier.New(InstrumentLoader(src, tm),
		tier.WithTier(InstrumentTier(top, tm), 0), tier.WithTier(InstrumentTier(bottom, tm), 0))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	ctx := context.Background()
	if v, err := cache.Get(ctx, "k"); err != nil || string(v) != "value of k" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if top.count("Add") != 1 || top.count("Set") != 0 {
		t.Errorf("backfill into the top tier: %d adds, %d sets; want it to add", top.count("Add"), top.count("Set"))
	}
	s := cache.Stats()
	if s.Tiers[0].Name != "top" || s.Tiers[1].Name != "bottom" {
		t.Errorf("tier names %q, %q: the decorator must keep them", s.Tiers[0].Name, s.Tiers[1].Name)
	}
	if s.Tiers[1].Counters["gc_runs"] != 7 || len(s.Tiers[1].Nodes) != 2 {
		t.Errorf("counters %v, nodes %v: want the tier's own", s.Tiers[1].Counters, s.Tiers[1].Nodes)
	}
	_ = top.Delete(ctx, "k")
	if _, err := cache.Warmup(ctx); err != nil {
		t.Fatalf("Warmup through instrumented tiers: %v", err)
	}
	if _, ok := top.snapshot()["k"]; !ok {
		t.Error("warmup did not copy the bottom tier into the top one")
	}
	if err := cache.Close(); err != nil {
		t.Fatal(err)
	}
	if top.count("Close") != 1 || bottom.count("Close") != 1 {
		t.Errorf("Close reached top %d, bottom %d times; want once each", top.count("Close"), bottom.count("Close"))
	}
}
