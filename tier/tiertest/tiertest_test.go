package tiertest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

func TestTierConformance(t *testing.T) {
	t.Parallel()
	tiertest.Suite{
		New:      func(*testing.T) tier.Tier { return tiertest.MustNew("mem", tiertest.WithMaxValueSize(1024)) },
		MaxValue: 1025,
	}.Run(t)
}

// TestLeaseTierConformance runs the suite against LeaseTier's plain
// operations; its leases are tested through the chain in package tier.
func TestLeaseTierConformance(t *testing.T) {
	t.Parallel()
	tiertest.Suite{
		New: func(*testing.T) tier.Tier { return tiertest.NewLeaseTier(wallClock{}) },
	}.Run(t)
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func TestTierFailsAndCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := tiertest.MustNew("mem")
	if err := mem.Set(ctx, "k", tier.Entry{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	mem.Fail(boom)
	if _, err := mem.Get(ctx, "k"); !errors.Is(err, boom) {
		t.Fatalf("Get of a failed tier = %v, want %v", err, boom)
	}
	mem.Recover()
	if _, err := mem.Get(ctx, "k"); err != nil {
		t.Fatalf("Get after Recover: %v", err)
	}
	if n := mem.Calls(tiertest.Get); n != 2 {
		t.Errorf("Calls(Get) = %d, want 2", n)
	}
	if c := mem.Counters(); c["entries"] != 1 || c["set_calls"] != 1 {
		t.Errorf("Counters = %v", c)
	}
}

func TestWithMaxValueSizeRejectsZero(t *testing.T) {
	t.Parallel()
	if _, err := tiertest.New("mem", tiertest.WithMaxValueSize(0)); err == nil {
		t.Fatal("WithMaxValueSize(0) accepted")
	}
}
