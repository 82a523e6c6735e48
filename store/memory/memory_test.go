package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/clocktest"
	"github.com/tiercache/tiercache/tier"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newTest(t *testing.T, opts ...Option) (*Tier, *clocktest.Clock) {
	t.Helper()
	clk := clocktest.New(epoch)
	m, err := New(append([]Option{WithClock(clk)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m, clk
}

// waitFor polls cond until it holds; the limit is generous so that a busy
// machine does not fail the test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name  string
		entry tier.Entry
	}{
		{"value without expiry", tier.Entry{Value: []byte("v")}},
		{"value with expiry", tier.Entry{Value: []byte("v"), Expires: epoch.Add(time.Hour)}},
		{"empty value", tier.Entry{Value: []byte{}, Expires: epoch.Add(time.Hour)}},
		{"negative", tier.Entry{Negative: true, Expires: epoch.Add(time.Minute)}},
		{"with load", tier.Entry{Value: []byte("v"), Expires: epoch.Add(time.Hour), Loaded: epoch.Add(-time.Second), Delta: 3 * time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, _ := newTest(t)
			if err := m.Set(ctx, "k", tc.entry); err != nil {
				t.Fatal(err)
			}
			got, err := m.Get(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			want := tc.entry
			if !bytes.Equal(got.Value, want.Value) || (got.Value == nil) != (want.Value == nil) ||
				!got.Expires.Equal(want.Expires) || got.Negative != want.Negative ||
				!got.Loaded.Equal(want.Loaded) || got.Delta != want.Delta {
				t.Fatalf("Get = %+v, want %+v", got, want)
			}
		})
	}
}

func TestValuesAreCopied(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _ := newTest(t)
	in := []byte("original")
	if err := m.Set(ctx, "k", tier.Entry{Value: in}); err != nil {
		t.Fatal(err)
	}
	in[0] = 'X'
	out, err := m.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	out.Value[1] = 'Y'
	again, _ := m.Get(ctx, "k")
	if string(again.Value) != "original" {
		t.Fatalf("stored value changed through a caller's slice: %q", again.Value)
	}
}

func TestMissAndDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _ := newTest(t)
	if _, err := m.Get(ctx, "absent"); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("Get of an absent key: %v, want ErrMiss", err)
	}
	if err := m.Delete(ctx, "absent"); err != nil {
		t.Fatalf("Delete of an absent key: %v", err)
	}
	_ = m.Set(ctx, "k", tier.Entry{Value: []byte("v")})
	if err := m.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(ctx, "k"); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("Get after Delete: %v, want ErrMiss", err)
	}
}

func TestAdd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	v := func(s string) tier.Entry { return tier.Entry{Value: []byte(s), Expires: epoch.Add(time.Hour)} }
	cases := []struct {
		name    string
		before  func(m *Tier, clk *clocktest.Clock)
		wantErr error
		want    string
	}{
		{"absent", func(*Tier, *clocktest.Clock) {}, nil, "new"},
		{"present", func(m *Tier, _ *clocktest.Clock) { _ = m.Set(ctx, "k", v("old")) }, tier.ErrNotStored, "old"},
		{"present negative", func(m *Tier, _ *clocktest.Clock) {
			_ = m.Set(ctx, "k", tier.Entry{Negative: true, Expires: epoch.Add(time.Hour)})
		}, tier.ErrNotStored, ""},
		{"deleted", func(m *Tier, _ *clocktest.Clock) { _ = m.Set(ctx, "k", v("old")); _ = m.Delete(ctx, "k") }, nil, "new"},
		{"expired", func(m *Tier, clk *clocktest.Clock) {
			_ = m.Set(ctx, "k", tier.Entry{Value: []byte("old"), Expires: epoch.Add(time.Millisecond)})
			clk.Advance(time.Millisecond)
		}, nil, "new"},
		{"past the tier's TTL", func(m *Tier, clk *clocktest.Clock) { _ = m.Set(ctx, "k", v("old")); clk.Advance(DefaultTTL) }, nil, "new"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, clk := newTest(t)
			tc.before(m, clk)
			err := m.Add(ctx, "k", v("new"))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Add = %v, want %v", err, tc.wantErr)
			}
			got, _ := m.Get(ctx, "k")
			if string(got.Value) != tc.want {
				t.Fatalf("after Add, Get = %q, want %q", got.Value, tc.want)
			}
		})
	}
}

// TestLifetime checks how long an entry is kept: until its own expiry or
// the tier's TTL, whichever comes first, and past its expiry by the grace.
func TestLifetime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name    string
		opts    []Option
		expires time.Duration // from now; 0: none
		kept    time.Duration // live until just before this
	}{
		{"own expiry first", nil, 300 * time.Millisecond, 300 * time.Millisecond},
		{"tier TTL first", nil, time.Hour, DefaultTTL},
		{"no expiry", nil, 0, DefaultTTL},
		{"longer TTL", []Option{WithTTL(time.Minute)}, 10 * time.Second, 10 * time.Second},
		{"grace", []Option{WithGrace(200 * time.Millisecond)}, 300 * time.Millisecond, 500 * time.Millisecond},
		{"grace capped by TTL", []Option{WithGrace(time.Hour)}, 300 * time.Millisecond, DefaultTTL},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, clk := newTest(t, tc.opts...)
			e := tier.Entry{Value: []byte("v")}
			if tc.expires > 0 {
				e.Expires = epoch.Add(tc.expires)
			}
			for _, op := range []func(context.Context, string, tier.Entry) error{m.Set, m.Add} {
				_ = m.Delete(ctx, "k")
				if err := op(ctx, "k", e); err != nil {
					t.Fatal(err)
				}
				clk.Advance(tc.kept - time.Millisecond)
				got, err := m.Get(ctx, "k")
				if err != nil {
					t.Fatalf("Get a millisecond before %v: %v", tc.kept, err)
				}
				if !got.Expires.Equal(e.Expires) {
					t.Fatalf("Get changed the expiry: %v, want %v", got.Expires, e.Expires)
				}
				clk.Advance(time.Millisecond)
				if _, err := m.Get(ctx, "k"); !errors.Is(err, tier.ErrMiss) {
					t.Fatalf("Get at %v: %v, want ErrMiss", tc.kept, err)
				}
				clk.Advance(-tc.kept)
			}
		})
	}
}

func TestExpiredEntryNotStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _ := newTest(t)
	old := tier.Entry{Value: []byte("old"), Expires: epoch.Add(time.Hour)}
	expired := tier.Entry{Value: []byte("new"), Expires: epoch}
	_ = m.Set(ctx, "k", old)
	if err := m.Add(ctx, "k", expired); err != nil {
		t.Fatalf("Add of an expired entry: %v, want nil", err)
	}
	if got, _ := m.Get(ctx, "k"); string(got.Value) != "old" {
		t.Fatalf("Add of an expired entry changed the key: %q", got.Value)
	}
	if err := m.Set(ctx, "k", expired); err != nil {
		t.Fatalf("Set of an expired entry: %v, want nil", err)
	}
	if _, err := m.Get(ctx, "k"); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("Set of an expired entry left the old one: %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _ := newTest(t, WithMaxItemSize(10))
	_ = m.Set(ctx, "k", tier.Entry{Value: []byte("small")})
	big := tier.Entry{Value: make([]byte, 11)}
	if err := m.Add(ctx, "other", big); !errors.Is(err, tier.ErrTooLarge) {
		t.Fatalf("Add of a large value: %v, want ErrTooLarge", err)
	}
	if err := m.Set(ctx, "k", big); !errors.Is(err, tier.ErrTooLarge) {
		t.Fatalf("Set of a large value: %v, want ErrTooLarge", err)
	}
	if _, err := m.Get(ctx, "k"); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("a refused Set left the old value: %v", err)
	}
	if n := m.Counters()["too_large"]; n != 2 {
		t.Fatalf("too_large = %d, want 2", n)
	}
}

func TestBounds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const valueSize = 100
	perEntry := int64(len("key:0000") + valueSize + EntryOverhead)
	cases := []struct {
		name       string
		opts       []Option
		maxEntries int64
	}{
		{"bytes", []Option{WithMaxBytes(50 * perEntry)}, 50},
		{"entries", []Option{WithMaxBytes(1 << 20), WithMaxEntries(20)}, 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, _ := newTest(t, tc.opts...)
			for i := range 1000 {
				if err := m.Set(ctx, fmt.Sprintf("key:%04d", i), tier.Entry{Value: make([]byte, valueSize)}); err != nil {
					t.Fatal(err)
				}
			}
			m.cache.CleanUp()
			c := m.Counters()
			if c["entries"] > tc.maxEntries || c["bytes"] > tc.maxEntries*perEntry {
				t.Fatalf("after 1000 Sets: %d entries, %d bytes; want at most %d entries", c["entries"], c["bytes"], tc.maxEntries)
			}
			if c["evictions"] < 1000-tc.maxEntries {
				t.Fatalf("evictions = %d, want at least %d", c["evictions"], 1000-tc.maxEntries)
			}
			if c["bytes"] != c["entries"]*perEntry {
				t.Fatalf("bytes = %d for %d entries of %d", c["bytes"], c["entries"], perEntry)
			}
		})
	}
}

func TestCounters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, clk := newTest(t)
	_ = m.Set(ctx, "a", tier.Entry{Value: []byte("12345")})
	_ = m.Set(ctx, "b", tier.Entry{Negative: true})
	_ = m.Set(ctx, "a", tier.Entry{Value: []byte("1234567890")}) // replaces
	_, _ = m.Get(ctx, "a")
	_, _ = m.Get(ctx, "b")
	_, _ = m.Get(ctx, "c")
	c := m.Counters()
	want := map[string]int64{
		"hits": 2, "misses": 1, "entries": 2, "evictions": 0, "too_large": 0,
		"bytes": int64(1+10+EntryOverhead) + int64(1+EntryOverhead),
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("Counters()[%q] = %d, want %d", k, c[k], v)
		}
	}
	_ = m.Delete(ctx, "b")
	clk.Advance(DefaultTTL)
	_, _ = m.Get(ctx, "a")
	m.cache.CleanUp()
	if c := m.Counters(); c["bytes"] != 0 || c["entries"] != 0 || c["expirations"] != 1 {
		t.Errorf("after a Delete and an expiry: %v, want 0 bytes, 0 entries, 1 expiration", c)
	}
}

func TestGetMulti(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _ := newTest(t)
	_ = m.Set(ctx, "a", tier.Entry{Value: []byte("1")})
	_ = m.Set(ctx, "b", tier.Entry{Negative: true})
	got, err := m.GetMulti(ctx, []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got["a"].Value) != "1" || !got["b"].Negative {
		t.Fatalf("GetMulti = %+v", got)
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, _ := newTest(t)
	_ = m.Set(ctx, "k", tier.Entry{Value: []byte("v")})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for name, err := range map[string]error{
		"Get":    func() error { _, err := m.Get(ctx, "k"); return err }(),
		"Set":    m.Set(ctx, "k", tier.Entry{}),
		"Add":    m.Add(ctx, "k", tier.Entry{}),
		"Delete": m.Delete(ctx, "k"),
	} {
		if !errors.Is(err, tier.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]Option{
		"max bytes":     WithMaxBytes(1),
		"max entries":   WithMaxEntries(-1),
		"ttl":           WithTTL(0),
		"grace":         WithGrace(-time.Second),
		"max item size": WithMaxItemSize(0),
		"clock":         WithClock(nil),
		"name":          WithName(""),
	} {
		if _, err := New(o); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: New = %v, want ErrInvalidOption", name, err)
		}
	}
}

// TestConcurrentUse runs every operation at once, for the race detector,
// and checks that no Get returns a value the key never had.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, err := New(WithMaxBytes(64 << 10))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := fmt.Sprintf("k%d", (i*7+g)%64)
				switch i % 4 {
				case 0:
					_ = m.Set(ctx, k, tier.Entry{Value: []byte(k)})
				case 1:
					_ = m.Add(ctx, k, tier.Entry{Value: []byte(k)})
				case 2:
					_ = m.Delete(ctx, k)
				default:
					if e, err := m.Get(ctx, k); err == nil && string(e.Value) != k {
						t.Errorf("Get(%q) = %q", k, e.Value)
					}
					_, _ = m.GetMulti(ctx, []string{k, "k1"})
				}
			}
		}()
	}
	wg.Wait()
}

// TestNoGoroutineLeak is not parallel: it counts goroutines while no other
// test runs.
func TestNoGoroutineLeak(t *testing.T) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	for range 5 {
		m, err := New(WithMaxBytes(10 << 10))
		if err != nil {
			t.Fatal(err)
		}
		for j := range 500 {
			_ = m.Set(ctx, fmt.Sprint(j), tier.Entry{Value: make([]byte, 100), Expires: time.Now().Add(time.Second)})
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}
