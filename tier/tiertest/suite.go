package tiertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// Suite is the contract of tier.Tier and of the optional interfaces, as
// tests. Fill in New (and what the store needs besides) and call Run.
type Suite struct {
	// New returns an empty tier for one test. It is called once per
	// subtest, possibly in parallel; the tier is the test's to close
	// (t.Cleanup).
	New func(t *testing.T) tier.Tier
	// MaxValue, when not 0, is a value size the tier refuses: Set and Add
	// of a value of that many bytes must fail with tier.ErrTooLarge.
	MaxValue int
	// DropsExpired says the tier does not keep an entry that has already
	// expired when it is stored (memcached). Otherwise Get must return it
	// as it was stored: the chain, not the tier, judges freshness.
	DropsExpired bool
	// Sync, when set, waits until the tier's writes are visible to Scan
	// (a write-behind store flushes).
	Sync func(t *testing.T, tr tier.Tier)
}

// Run runs the suite against s.New's tiers, each case in a parallel
// subtest. The cases of an optional interface run when the tier has it.
func (s Suite) Run(t *testing.T) {
	t.Helper()
	if s.New == nil {
		t.Fatal("tiertest: Suite.New is nil")
	}
	// The cases of optional interfaces the tier lacks are left out, not
	// skipped: a probe tier says which it has.
	probe := s.New(t)
	_, adder := probe.(tier.Adder)
	_, multi := probe.(tier.MultiGetter)
	_, bulk := probe.(tier.BulkAdder)
	_, scanner := probe.(tier.Scanner)
	cases := []struct {
		name  string
		run   func(t *testing.T, tr tier.Tier)
		apply bool
	}{
		{"MissWrapsErrMiss", s.missWrapsErrMiss, true},
		{"RoundTrip", s.roundTrip, true},
		{"SetReplaces", s.setReplaces, true},
		{"Expired", s.expired, true},
		{"DeleteAbsentIsNotAnError", s.deleteAbsent, true},
		{"Delete", s.delete, true},
		{"TooLarge", s.tooLarge, s.MaxValue > 0},
		{"Add", s.add, adder},
		{"GetMultiPartial", s.getMultiPartial, multi},
		{"AddBulk", s.addBulk, bulk},
		{"Scan", s.scan, scanner},
		{"Concurrent", s.concurrent, true},
	}
	for _, c := range cases {
		if !c.apply {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, s.New(t))
		})
	}
}

// keys are the keys the cases use: any byte string is a valid key.
var keys = []string{"plain", "with space", "new\r\nline", "ключ", strings.Repeat("long", 80)}

// ctx bounds every call of a case: a tier that hangs fails the test
// rather than the run.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func sameEntry(got, want tier.Entry) error {
	switch {
	case !bytes.Equal(got.Value, want.Value):
		return fmt.Errorf("value %q, want %q", got.Value, want.Value)
	case got.Negative != want.Negative:
		return fmt.Errorf("negative %v, want %v", got.Negative, want.Negative)
	case got.Expires.IsZero() != want.Expires.IsZero() || got.Expires.Sub(want.Expires).Abs() >= time.Millisecond:
		return fmt.Errorf("expires %v, want %v (to the millisecond)", got.Expires, want.Expires)
	case got.Loaded.IsZero() != want.Loaded.IsZero() || got.Loaded.Sub(want.Loaded).Abs() >= time.Microsecond:
		return fmt.Errorf("loaded %v, want %v (to the microsecond)", got.Loaded, want.Loaded)
	case got.Delta.Round(time.Microsecond) != want.Delta.Round(time.Microsecond):
		return fmt.Errorf("delta %v, want %v", got.Delta, want.Delta)
	}
	return nil
}

func mustGet(t *testing.T, tr tier.Tier, key string, want tier.Entry) {
	t.Helper()
	got, err := tr.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("Get(%q) after storing it: %v", key, err)
	}
	if err := sameEntry(got, want); err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
}

func mustMiss(t *testing.T, tr tier.Tier, key string) {
	t.Helper()
	if e, err := tr.Get(ctx(t), key); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("Get(%q) = %q, %v; want an error wrapping tier.ErrMiss", key, e.Value, err)
	}
}

func mustSet(t *testing.T, tr tier.Tier, key string, e tier.Entry) {
	t.Helper()
	if err := tr.Set(ctx(t), key, e); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func live(v string) tier.Entry {
	return tier.Entry{Value: []byte(v), Expires: time.Now().Add(time.Hour).Truncate(time.Millisecond)}
}

func (s Suite) missWrapsErrMiss(t *testing.T, tr tier.Tier) {
	for _, k := range keys {
		mustMiss(t, tr, k)
	}
}

func (s Suite) roundTrip(t *testing.T, tr tier.Tier) {
	now := time.Now().Truncate(time.Microsecond)
	entries := map[string]tier.Entry{
		"plain":      live("v"),
		"with space": {Value: []byte("never expires")},
		"new\r\nline": {Value: []byte{0, '\r', '\n', 0xff, 'E', 'N', 'D', '\r', '\n'},
			Expires: now.Add(time.Hour).Truncate(time.Millisecond)},
		"ключ":                     {Negative: true, Expires: now.Add(time.Minute).Truncate(time.Millisecond)},
		strings.Repeat("long", 80): {Value: []byte{}, Expires: now.Add(time.Hour).Truncate(time.Millisecond)},
		"loaded": {Value: []byte("with load times"), Expires: now.Add(time.Hour).Truncate(time.Millisecond),
			Loaded: now.Add(-time.Second), Delta: 1500 * time.Microsecond},
	}
	for k, e := range entries {
		mustSet(t, tr, k, e)
	}
	for k, e := range entries {
		mustGet(t, tr, k, e)
	}
}

func (s Suite) setReplaces(t *testing.T, tr tier.Tier) {
	mustSet(t, tr, "k", live("old"))
	want := live("new")
	mustSet(t, tr, "k", want)
	mustGet(t, tr, "k", want)
}

func (s Suite) expired(t *testing.T, tr tier.Tier) {
	mustSet(t, tr, "k", live("older"))
	old := tier.Entry{Value: []byte("expired"), Expires: time.Now().Add(-time.Minute).Truncate(time.Millisecond)}
	mustSet(t, tr, "k", old)
	if s.DropsExpired {
		mustMiss(t, tr, "k") // and the older value is gone too
		return
	}
	mustGet(t, tr, "k", old)
}

func (s Suite) deleteAbsent(t *testing.T, tr tier.Tier) {
	if err := tr.Delete(ctx(t), "never stored"); err != nil {
		t.Fatalf("Delete of an absent key: %v, want nil", err)
	}
}

func (s Suite) delete(t *testing.T, tr tier.Tier) {
	for _, k := range keys {
		mustSet(t, tr, k, live(k))
	}
	for _, k := range keys {
		if err := tr.Delete(ctx(t), k); err != nil {
			t.Fatalf("Delete(%q): %v", k, err)
		}
		mustMiss(t, tr, k)
	}
}

func (s Suite) tooLarge(t *testing.T, tr tier.Tier) {
	big := tier.Entry{Value: bytes.Repeat([]byte("x"), s.MaxValue), Expires: time.Now().Add(time.Hour)}
	mustSet(t, tr, "k", live("small"))
	if err := tr.Set(ctx(t), "k", big); !errors.Is(err, tier.ErrTooLarge) {
		t.Fatalf("Set of %d bytes = %v, want an error wrapping tier.ErrTooLarge", s.MaxValue, err)
	}
	mustMiss(t, tr, "k") // the old value must not outlive a newer one
	if a, ok := tr.(tier.Adder); ok {
		if err := a.Add(ctx(t), "k", big); !errors.Is(err, tier.ErrTooLarge) {
			t.Fatalf("Add of %d bytes = %v, want an error wrapping tier.ErrTooLarge", s.MaxValue, err)
		}
	}
}

func (s Suite) add(t *testing.T, tr tier.Tier) {
	a := tr.(tier.Adder)
	first := live("first")
	if err := a.Add(ctx(t), "k", first); err != nil {
		t.Fatalf("Add of an absent key: %v", err)
	}
	mustGet(t, tr, "k", first)
	if err := a.Add(ctx(t), "k", live("second")); !errors.Is(err, tier.ErrNotStored) {
		t.Fatalf("Add of a present key = %v, want an error wrapping tier.ErrNotStored", err)
	}
	mustGet(t, tr, "k", first)

	// An expired entry is absent to Add: a backfill replaces it.
	mustSet(t, tr, "old", tier.Entry{Value: []byte("x"), Expires: time.Now().Add(-time.Minute)})
	fresh := live("fresh")
	if err := a.Add(ctx(t), "old", fresh); err != nil {
		t.Fatalf("Add over an expired entry: %v, want it stored", err)
	}
	mustGet(t, tr, "old", fresh)
}

func (s Suite) getMultiPartial(t *testing.T, tr tier.Tier) {
	mg := tr.(tier.MultiGetter)
	stored := map[string]tier.Entry{}
	for i, k := range keys {
		if i%2 == 0 {
			stored[k] = live("value of " + k)
			mustSet(t, tr, k, stored[k])
		}
	}
	got, err := mg.GetMulti(ctx(t), keys)
	if err != nil {
		t.Fatalf("GetMulti: %v", err)
	}
	if len(got) != len(stored) {
		t.Errorf("GetMulti returned %d keys, want the %d stored", len(got), len(stored))
	}
	for k, want := range stored {
		e, ok := got[k]
		if !ok {
			t.Errorf("GetMulti: %q absent", k)
			continue
		}
		if err := sameEntry(e, want); err != nil {
			t.Errorf("GetMulti: %q: %v", k, err)
		}
	}
	none, err := mg.GetMulti(ctx(t), []string{"absent-1", "absent-2"})
	if err != nil || len(none) != 0 {
		t.Errorf("GetMulti of absent keys = %v, %v; want an empty map", none, err)
	}
}

func (s Suite) addBulk(t *testing.T, tr tier.Tier) {
	ba := tr.(tier.BulkAdder)
	present := live("present")
	mustSet(t, tr, "b", present)
	entries := map[string]tier.Entry{"a": live("A"), "b": live("B"), "c": live("C")}
	var mu sync.Mutex
	done := map[string]error{}
	err := ba.AddBulk(ctx(t), func(yield func(string, tier.Entry) bool) {
		for _, k := range []string{"a", "b", "c"} {
			if !yield(k, entries[k]) {
				return
			}
		}
	}, func(key string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if _, twice := done[key]; twice {
			t.Errorf("AddBulk: done called twice for %q", key)
		}
		done[key] = err
	})
	if err != nil {
		t.Fatalf("AddBulk: %v", err)
	}
	if len(done) != 3 || done["a"] != nil || done["c"] != nil || !errors.Is(done["b"], tier.ErrNotStored) {
		t.Fatalf("AddBulk reported %v; want a and c stored, b not stored", done)
	}
	mustGet(t, tr, "a", entries["a"])
	mustGet(t, tr, "b", present)
	mustGet(t, tr, "c", entries["c"])
}

func (s Suite) scan(t *testing.T, tr tier.Tier) {
	sc := tr.(tier.Scanner)
	for _, k := range keys {
		mustSet(t, tr, k, live(k))
	}
	if s.Sync != nil {
		s.Sync(t, tr)
	}
	seen := map[string]bool{}
	err := sc.Scan(ctx(t), func(key string, e tier.Entry) error {
		if string(e.Value) != key {
			return fmt.Errorf("Scan: %q holds %q", key, e.Value)
		}
		seen[key] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !seen[k] {
			t.Errorf("Scan did not list %q", k)
		}
	}
	stop := errors.New("stop")
	if err := sc.Scan(ctx(t), func(string, tier.Entry) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Scan = %v, want the error fn returned", err)
	}
}

func (s Suite) concurrent(t *testing.T, tr tier.Tier) {
	const workers, perWorker = 8, 25
	c := ctx(t)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				k := fmt.Sprintf("w%d-%d", w, i)
				if err := tr.Set(c, k, live(k)); err != nil {
					errs <- fmt.Errorf("Set(%q): %w", k, err)
					return
				}
				e, err := tr.Get(c, k)
				if err != nil || string(e.Value) != k {
					errs <- fmt.Errorf("Get(%q) = %q, %v after Set", k, e.Value, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
