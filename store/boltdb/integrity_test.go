package boltdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/tier"
)

// damageKey and damageValue make every value checkable from its key alone.
func damageKey(i int) string { return fmt.Sprintf("key-%06d", i) }
func damageValue(key string, i int) []byte {
	return bytes.Repeat([]byte(key+"|"), 1+i%40)
}

// TestDamagedFileServesNoDamagedValue fills a file, flips bytes in it
// (single bytes all over the data pages, and 4 KiB of random bytes over
// the middle), and reads every key back through Get, GetMulti, Scan and
// ScanHot: whatever is returned must be the value written. Damage may cost
// misses and errors, never a wrong value. The reads also find damaged
// records (counted), and the writer removes them.
func TestDamagedFileServesNoDamagedValue(t *testing.T) {
	t.Parallel()
	const n = 5_000
	ctx := context.Background()
	path := tempPath(t)
	s, err := Open(path, WithGCInterval(0), WithNoSync(true), WithQueueSize(n))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		k := damageKey(i)
		mustSet(t, s, k, tier.Entry{Value: damageValue(k, i)})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	page := int64(os.Getpagesize())
	rng := rand.New(rand.NewPCG(7, 11))
	for range 100 { // single bytes, past the two meta pages
		off := 2*page + rng.Int64N(info.Size()-2*page)
		b := []byte{0}
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= byte(1 + rng.IntN(255))
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	if _, err := f.WriteAt(junk, info.Size()/2); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, WithGCInterval(0), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatalf("Open of the damaged file: %v", err)
	}
	defer s.Close()
	want := func(key string) []byte {
		var i int
		if _, err := fmt.Sscanf(key, "key-%06d", &i); err != nil || i < 0 || i >= n || key != damageKey(i) {
			return nil // not a key that was written: any value is damage
		}
		return damageValue(key, i)
	}
	wrong, served := 0, 0
	check := func(how, key string, e tier.Entry) {
		served++
		if w := want(key); w == nil || !bytes.Equal(e.Value, w) {
			wrong++
			if wrong <= 5 {
				t.Errorf("%s served a damaged value for %.40q: %.40q", how, key, e.Value)
			}
		}
	}
	for i := range n {
		k := damageKey(i)
		if e, err := s.Get(ctx, k); err == nil {
			check("Get", k, e)
		}
	}
	keys := make([]string, 0, 500)
	for i := range n {
		keys = append(keys, damageKey(i))
		if len(keys) == cap(keys) || i == n-1 {
			m, _ := s.GetMulti(ctx, keys)
			for k, e := range m {
				check("GetMulti", k, e)
			}
			keys = keys[:0]
		}
	}
	for how, scan := range map[string]func(context.Context, func(string, tier.Entry) error) error{"Scan": s.Scan, "ScanHot": s.ScanHot} {
		_ = scan(ctx, func(k string, e tier.Entry) error { check(how, k, e); return nil })
	}
	c := s.Counters()
	t.Logf("%d values served, %d damaged; counters: checksum_errors=%d bad_records=%d panics=%d", served, wrong, c["checksum_errors"], c["bad_records"], c["panics"])
	if wrong > 0 {
		t.Fatalf("%d damaged values served", wrong)
	}
	if served < n {
		t.Errorf("only %d values served over four full reads of %d keys: the damage should cost a few", served, n)
	}
	if c["checksum_errors"] == 0 {
		t.Error("no record failed its checksum: the damage missed every record, or reads do not check")
	}
	if err := s.Flush(ctx); err != nil && !errors.Is(err, ErrCorrupt) {
		t.Fatal(err)
	}
	if s.Counters()["scrubbed"] == 0 {
		t.Error("no damaged record was removed")
	}
}

// TestFullDiskLosesNoAcknowledgedWrite writes to a file on a small tmpfs
// until far more is queued than fits. Close must then say that writes were
// lost, or every write Set acknowledged must be in the file when it is
// opened again.
func TestFullDiskLosesNoAcknowledgedWrite(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; this test runs as root in CI")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s): run as root where mount(8) works", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	path := filepath.Join(dir, "cache.db")
	ctx := context.Background()
	s, err := Open(path, WithGCInterval(0), WithQueueSize(10_000), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), 1000)
	acked := make([]string, 0, 4000)
	for i := range 4000 { // 4 MB of values for a 2 MB disk
		k := fmt.Sprint("k", i)
		if err := s.Set(ctx, k, tier.Entry{Value: value}); err == nil {
			acked = append(acked, k)
		}
	}
	closeErr := s.Close()
	t.Logf("Close: %v", closeErr)
	if closeErr != nil {
		if !errors.Is(closeErr, ErrLostWrites) {
			t.Errorf("Close = %v, want an error wrapping ErrLostWrites", closeErr)
		}
		return
	}
	s, err = Open(path, WithReadOnly())
	if err != nil {
		t.Fatalf("reopen after Close returned nil: %v", err)
	}
	defer s.Close()
	missing := 0
	for _, k := range acked {
		if _, err := s.Get(ctx, k); err != nil {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("Close returned nil, and %d of %d acknowledged writes are not in the file", missing, len(acked))
	}
}
