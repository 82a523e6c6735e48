package boltdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCompact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := tempPath(t)
	s, err := Open(path, WithGCInterval(0), WithNoSync(true))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		mustSet(t, s, fmt.Sprint("k", i), value(fmt.Sprintf("%0500d", i)))
	}
	mustFlush(t, s)
	for i := range 4900 {
		if err := s.Delete(ctx, fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var total int64
	res, err := Compact(path, time.Second, func(n int64, written func() int64) func() {
		total = n
		return func() {}
	})
	if err != nil {
		t.Fatal(err)
	}
	if total <= 0 || res.After >= res.Before {
		t.Errorf("Compact = %+v, progress total %d; want a smaller file and a total", res, total)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*compact*")); len(left) > 0 {
		t.Errorf("Compact left %v behind", left)
	}
	s = openAt(t, path)
	for i := 4900; i < 5000; i++ {
		if e, err := s.Get(ctx, fmt.Sprint("k", i)); err != nil || string(e.Value) != fmt.Sprintf("%0500d", i) {
			t.Fatalf("k%d after Compact = %q, %v", i, e.Value, err)
		}
	}
	if _, err := Compact(path, time.Millisecond, nil); !errors.Is(err, ErrLocked) {
		t.Errorf("Compact of a held file = %v, want ErrLocked", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != res.After {
		t.Errorf("the held file changed under a failed Compact: %v, %v", fi, err)
	}
}
