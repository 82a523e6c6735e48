package boltdb

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tiercache/tiercache/tier"
)

func TestScanChunked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t, WithNoSync(true))
	s.scanChunk = 100
	const n = 2500
	for i := range n {
		mustSet(t, s, fmt.Sprintf("k%05d", i), value(fmt.Sprint(i)))
	}
	mustFlush(t, s)
	before := s.db.Stats().TxN
	i := 0
	err := s.Scan(ctx, func(k string, e tier.Entry) error {
		if want := fmt.Sprintf("k%05d", i); i < n && (k != want || string(e.Value) != fmt.Sprint(i)) {
			return fmt.Errorf("entry %d is %q=%q, want %q", i, k, e.Value, want)
		}
		if open := s.db.Stats().OpenTxN; open != 0 {
			return fmt.Errorf("fn called with %d read transactions open", open)
		}
		if i == 10 { // the store is usable from fn, writes included
			mustSet(t, s, "zz-written during scan", value("v"))
			if err := s.Flush(ctx); err != nil {
				return err
			}
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i < n {
		t.Fatalf("Scan visited %d entries, want at least %d", i, n)
	}
	if txs := s.db.Stats().TxN - before; txs < n/100 {
		t.Fatalf("Scan used %d read transactions, want one per chunk (%d)", txs, n/100)
	}
}

func TestScanMergesQueuedWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t, held())
	for _, k := range []string{"a", "b", "c"} {
		mustSet(t, s, k, value("disk "+k))
	}
	mustFlush(t, s)
	mustSet(t, s, "b", value("queued b"))
	mustSet(t, s, "e", value("queued e"))
	mustSet(t, s, "d", value("queued d"))
	if err := s.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := s.Scan(ctx, func(k string, e tier.Entry) error {
		got = append(got, k+"="+string(e.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a=disk a", "b=queued b", "d=queued d", "e=queued e"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Scan = %q, want %q", got, want)
	}
}

func TestScanStops(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	for i := range 10 {
		mustSet(t, s, fmt.Sprint(i), value("v"))
	}
	mustFlush(t, s)
	stop := errors.New("enough")
	cases := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		stopAt  int
		wantErr error
		calls   int
	}{
		{"fn error", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, 3, stop, 3},
		{"context canceled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, -1, context.Canceled, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			calls := 0
			err := s.Scan(ctx, func(string, tier.Entry) error {
				calls++
				if calls == tc.stopAt {
					return stop
				}
				return nil
			})
			if !errors.Is(err, tc.wantErr) || calls != tc.calls {
				t.Fatalf("Scan = %v after %d calls, want %v after %d", err, calls, tc.wantErr, tc.calls)
			}
		})
	}
}
