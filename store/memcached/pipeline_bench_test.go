package memcached

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
)

// BenchmarkAddBulk measures AddBulk with 100-byte values on one memcached
// started with -t 1, as docs/benchmarks.md explains; b.N is the number of
// entries. "meta" sends quiet meta-protocol adds to memcached, "classic"
// classic adds, each answered, and "nutcracker" classic adds through a
// nutcracker in front of that one memcached. "absent" adds keys memcached
// does not hold; "present" runs the same adds a second time, when every
// one is answered not stored. Run with:
//
//	go test -run '^$' -bench AddBulk -benchtime 200000x ./store/memcached/
func BenchmarkAddBulk(b *testing.B) {
	for _, target := range []struct {
		name    string
		proto   LeaseProtocol
		proxied bool
	}{
		{"meta", LeaseProtocolMeta, false},
		{"classic", LeaseProtocolClassic, false},
		{"nutcracker", LeaseProtocolClassic, true},
	} {
		for _, present := range []bool{false, true} {
			name := target.name + "/absent"
			if present {
				name = target.name + "/present"
			}
			b.Run(name, func(b *testing.B) {
				mc := testenv.Memcached(b, testenv.WithMemoryMB(1024))
				addr := mc.Addr
				if target.proxied {
					addr = startNutcracker(b, mc).Addr
				}
				// The protocol is named rather than asked, so that the
				// probe of the first run is not timed.
				tr, err := New([]string{addr}, WithLeaseProtocol(target.proto))
				if err != nil {
					b.Fatal(err)
				}
				defer tr.Close()
				benchAddBulk(b, tr, present)
			})
		}
	}
}

func benchAddBulk(b *testing.B, tr *Tier, present bool) {
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = fmt.Sprintf("article:%08d", i)
	}
	e := tier.Entry{Value: make([]byte, 100), Expires: time.Now().Add(time.Hour)}
	entries := func(yield func(string, tier.Entry) bool) {
		for _, k := range keys {
			if !yield(k, e) {
				return
			}
		}
	}
	var stored, notStored, failed atomic.Int64
	done := func(_ string, err error) {
		switch {
		case err == nil:
			stored.Add(1)
		case errors.Is(err, tier.ErrNotStored):
			notStored.Add(1)
		default:
			failed.Add(1)
		}
	}
	ctx := context.Background()
	if present {
		if err := tr.AddBulk(ctx, entries, func(string, error) {}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if err := tr.AddBulk(ctx, entries, done); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() != 0 || (present && notStored.Load() != int64(b.N)) || (!present && stored.Load() != int64(b.N)) {
		b.Fatalf("stored=%d not_stored=%d failed=%d of %d", stored.Load(), notStored.Load(), failed.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "adds/s")
}
