package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/tiercache/tiercache/store/memcached"
	"github.com/tiercache/tiercache/tier"
)

// BenchmarkWarmupVsRawStream compares, in one run and on one memcached, a
// warmup of a million entries from the durable tier with the fastest way
// to put the same entries into memcached: one connection writing a
// pipelined stream of quiet meta adds (ms <key> <len> T<ttl> ME q) of the
// entries' envelopes, prepared in memory beforehand. memcached is
// restarted empty before each, and the two take turns going first. It reports both rates, their ratio, and the
// rates of the warmup's stages alone: reading the file in ScanHot order
// ("scan"), building the add commands in memory ("encode") and the raw
// stream itself ("send"), with the load average. Run with:
//
//	bash scripts/with-services.sh go test -run '^$' -bench WarmupVsRawStream -benchtime 3x -timeout 60m ./e2e/
func BenchmarkWarmupVsRawStream(b *testing.B) {
	const n = 1_000_000
	// Timeouts and failure limits far above a loaded machine's stalls: a
	// benchmark that compares rates must not lose adds to them.
	cs := newColdStart(b, n, 10, nil, memcached.WithTimeout(10*time.Second), memcached.WithFailureLimit(1000))
	ctx := context.Background()
	ttl := int64((10 * time.Minute) / time.Second)

	// The entries, in the order the warmup reads them.
	type entry struct {
		key string
		e   tier.Entry
	}
	entries := make([]entry, 0, n)
	scanStart := time.Now()
	if err := cs.disk.ScanHot(ctx, func(k string, e tier.Entry) error {
		entries = append(entries, entry{k, e})
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	scanRate := float64(len(entries)) / time.Since(scanStart).Seconds()

	var warm, raw, ratio, encode []float64
	for run := range b.N {
		encodeStart := time.Now()
		stream := make([]byte, 0, n*(len(entries[0].key)+len(entries[0].e.Value)+48))
		for _, e := range entries {
			env := tier.EncodeEntry(e.e)
			stream = append(stream, "ms "...)
			stream = append(stream, e.key...)
			stream = append(stream, ' ')
			stream = strconv.AppendInt(stream, int64(len(env)), 10)
			stream = append(stream, " T"...)
			stream = strconv.AppendInt(stream, ttl, 10)
			stream = append(stream, " ME q\r\n"...)
			stream = append(stream, env...)
			stream = append(stream, "\r\n"...)
		}
		stream = append(stream, "mn\r\n"...)
		encode = append(encode, float64(len(entries))/time.Since(encodeStart).Seconds())

		rawRun := func() {
			restartEmpty(b, cs)
			rawTook, replies := rawStream(b, cs.mc.Addr, stream)
			if replies != 0 {
				b.Fatalf("raw stream: %d adds not stored", replies)
			}
			raw = append(raw, float64(len(entries))/rawTook.Seconds())
		}
		warmRun := func() {
			restartEmpty(b, cs)
			st, err := cs.cache.Warmup(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if st.Last.Written != int64(n) {
				b.Errorf("warmup wrote %d of %d entries: %+v", st.Last.Written, n, st.Last)
			}
			warm = append(warm, float64(st.Last.Written)/st.Last.Elapsed.Seconds())
		}
		// Alternate which goes first, so that a machine getting busier or
		// quieter over the run does not favour one.
		if run%2 == 0 {
			rawRun()
			warmRun()
		} else {
			warmRun()
			rawRun()
		}
		ratio = append(ratio, warm[run]/raw[run])
		b.Logf("run %d: warmup %.0f entries/s, raw stream %.0f/s (%.2f×); scan %.0f/s, encode %.0f/s; load average %s",
			run, warm[run], raw[run], ratio[run], scanRate, encode[run], loadAverage())
	}
	b.ReportMetric(median(warm), "warmup-entries/s")
	b.ReportMetric(median(raw), "raw-entries/s")
	b.ReportMetric(median(ratio), "warmup/raw")
	b.ReportMetric(scanRate, "scan-entries/s")
	b.ReportMetric(median(encode), "encode-entries/s")
	b.ReportMetric(0, "ns/op")
}

// restartEmpty restarts memcached and waits until the chain's tier talks
// to the new process.
func restartEmpty(b *testing.B, cs *coldStart) {
	cs.mc.Restart()
	waitFor(b, "memcached back", func() bool {
		_, err := cs.mcTier.Get(context.Background(), "probe")
		return err == nil || errors.Is(err, tier.ErrMiss)
	})
}

// rawStream writes stream to memcached on one connection while reading
// the replies, and returns how long until the closing MN came back and
// how many other replies (adds not stored, errors) came before it.
func rawStream(b *testing.B, addr string, stream []byte) (time.Duration, int) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	type result struct {
		replies int
		err     error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		r := bufio.NewReaderSize(conn, 64<<10)
		replies := 0
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				done <- result{replies, err}
				return
			}
			if line == "MN\r\n" {
				done <- result{replies, nil}
				return
			}
			replies++
		}
	}()
	for off := 0; off < len(stream); off += 64 << 10 {
		if _, err := conn.Write(stream[off:min(off+64<<10, len(stream))]); err != nil {
			b.Fatal(err)
		}
	}
	res := <-done
	if res.err != nil {
		b.Fatal(fmt.Errorf("raw stream: %w", res.err))
	}
	return time.Since(start), res.replies
}
