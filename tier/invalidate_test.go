package tier

import (
	"context"
	"testing"
	"time"
)

// pausingTier is a memTier whose Delete can be held in the middle, to
// run a load inside an invalidation.
type pausingTier struct {
	*memTier
	onDelete func(key string)
}

func (t *pausingTier) Delete(ctx context.Context, key string) error {
	if t.onDelete != nil {
		t.onDelete(key)
	}
	return t.memTier.Delete(ctx, key)
}

// A load that starts while a Delete is under way (after it voided the
// loads in flight, before it reached every tier) finds the old value in a
// tier the Delete has not reached yet. Its backfill must not land, and no
// caller arriving after the Delete returned may get that value.
func TestLoadDuringInvalidation(t *testing.T) {
	t.Parallel()
	top := newMemTier("top")
	disk := &pausingTier{memTier: newMemTier("disk")}
	src := newMapLoader(map[string]string{"k": "v2"})
	c, err := New(src, WithTier(top, time.Minute), WithTier(disk, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	disk.Set(ctx, "k", Entry{Value: []byte("v1")})

	inside := make(chan struct{})
	resume := make(chan struct{})
	disk.onDelete = func(string) {
		close(inside)
		<-resume
	}
	deleted := make(chan error)
	go func() { deleted <- c.Delete(ctx, "k") }()
	<-inside // the top tier is clear, the durable tier not yet
	disk.onDelete = nil
	if v, err := c.Get(ctx, "k"); err != nil || string(v) != "v1" {
		t.Fatalf("Get during the Delete = %q, %v; want v1 (it overlaps the Delete)", v, err)
	}
	close(resume)
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	if e, ok := top.entry("k"); ok {
		t.Fatalf("after the Delete the top tier holds %q", e.Value)
	}
	mustGetValue(t, c, "k", "v2")
}
