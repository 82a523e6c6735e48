package boltdb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tiercache/tiercache/tier"
)

func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opt  Option
	}{
		{"negative GC interval", WithGCInterval(-time.Second)},
		{"zero GC batch", WithGCBatch(0)},
		{"negative grace", WithGCGrace(-1)},
		{"negative max entries", WithMaxEntries(-1)},
		{"negative max bytes", WithMaxBytes(-1)},
		{"negative lock timeout", WithLockTimeout(-1)},
		{"zero queue", WithQueueSize(0)},
		{"zero batch", WithBatchSize(0)},
		{"negative flush interval", WithFlushInterval(-1)},
		{"nil clock", WithClock(nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := tempPath(t)
			s, err := Open(path, tc.opt)
			if !errors.Is(err, ErrInvalidOption) {
				if s != nil {
					_ = s.Close()
				}
				t.Fatalf("Open = %v, want ErrInvalidOption", err)
			}
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Open with a bad option created the file (stat: %v)", err)
			}
		})
	}
}

func TestLockedSameProcess(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	first, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, timeout := range []time.Duration{0, 100 * time.Millisecond} {
		for _, opt := range []Option{nil, WithReadOnly()} {
			s, err := Open(path, WithLockTimeout(timeout), opt)
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
				if s != nil {
					_ = s.Close()
				}
				t.Fatalf("second Open (timeout %s) = %v, want ErrLocked naming %s", timeout, err, path)
			}
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, path, WithLockTimeout(0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHelperProcess is not a test: TestLockedOtherProcess runs the test
// binary again with it, to hold the file from another process.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv("BOLTDB_TEST_HOLD")
	if path == "" {
		t.Skip("helper process for TestLockedOtherProcess")
	}
	s, err := Open(path)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin) // hold the file until stdin closes
	_ = s.Close()
	os.Exit(0)
}

func TestLockedOtherProcess(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "BOLTDB_TEST_HOLD="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper process said %q, %v", line, err)
	}

	s, err := Open(path, WithLockTimeout(100*time.Millisecond))
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("Open of a file another process holds = %v, want ErrLocked naming the path", err)
	}

	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v", err)
	}
	s = openAt(t, path, WithLockTimeout(0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := tempPath(t)
	s := openAt(t, path)
	mustSet(t, s, "k", value("v"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	r1 := openAt(t, path, WithReadOnly())
	r2 := openAt(t, path, WithReadOnly()) // readers share the file
	for _, r := range []*Store{r1, r2} {
		if got, err := r.Get(ctx, "k"); err != nil || string(got.Value) != "v" {
			t.Fatalf("read-only Get = %q, %v", got.Value, err)
		}
	}
	writes := map[string]func() error{
		"Set":    func() error { return r1.Set(ctx, "k", value("w")) },
		"Add":    func() error { return r1.Add(ctx, "new", value("w")) },
		"Delete": func() error { return r1.Delete(ctx, "k") },
		"RunGC":  func() error { _, err := r1.RunGC(ctx); return err },
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, ErrReadOnly) {
			t.Errorf("read-only %s = %v, want ErrReadOnly", name, err)
		}
	}
	if err := r1.Flush(ctx); err != nil {
		t.Errorf("read-only Flush = %v, want nil", err)
	}
	if _, err := Open(path, WithLockTimeout(0)); !errors.Is(err, ErrLocked) {
		t.Errorf("Open for writing while readers hold the file = %v, want ErrLocked", err)
	}
	if _, err := Open(path+".missing", WithReadOnly()); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrCorrupt) {
		t.Errorf("read-only Open of a missing file = %v, want ErrNotExist", err)
	}
}

// writeValidFile writes n entries to a new file and returns its path and
// the size bbolt's meta page gives it.
func writeValidFile(t *testing.T, n int) (string, int64) {
	t.Helper()
	path := tempPath(t)
	s := openAt(t, path, WithNoSync(true))
	for i := range n {
		mustSet(t, s, fmt.Sprintf("key-%06d", i), value(strings.Repeat("v", 200)))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var size int64
	_ = db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	return path, size
}

func TestCorruptFile(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex // the subtests run in parallel
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := func(n int) []byte {
		mu.Lock()
		defer mu.Unlock()
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	cases := []struct {
		name string
		make func(t *testing.T) string
	}{
		{"random garbage", func(t *testing.T) string {
			path := tempPath(t)
			if err := os.WriteFile(path, garbage(64<<10), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"short garbage", func(t *testing.T) string {
			path := tempPath(t)
			if err := os.WriteFile(path, []byte("not a database\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"truncated to half", func(t *testing.T) string {
			path, size := writeValidFile(t, 1000)
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			half := info.Size() / 2
			if half >= size {
				t.Fatalf("half the file (%d bytes) still holds every page (%d bytes): the test would prove nothing", half, size)
			}
			if err := os.Truncate(path, half); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"pages overwritten", func(t *testing.T) string {
			path, size := writeValidFile(t, 1000)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			const page = 4096 // keep the two meta pages, wreck the rest
			if _, err := f.WriteAt(garbage(int(size)-2*page), 2*page); err != nil {
				t.Fatal(err)
			}
			return path
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := tc.make(t)
			original, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			s, err := Open(path, WithGCInterval(0))
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
				if s != nil {
					_ = s.Close()
				}
				t.Fatalf("Open = %v, want ErrCorrupt naming %s", err, path)
			}
			if now, _ := os.ReadFile(path); string(now) != string(original) {
				t.Fatal("Open without quarantine changed the corrupt file")
			}

			s = openAt(t, path, WithQuarantineCorrupt(true))
			aside := s.Quarantined()
			if !strings.HasPrefix(aside, path+".corrupt-") {
				t.Fatalf("Quarantined() = %q, want %s.corrupt-<time>", aside, path)
			}
			if moved, err := os.ReadFile(aside); err != nil || string(moved) != string(original) {
				t.Fatalf("the moved-aside file does not hold the corrupt bytes (%v)", err)
			}
			if s.Counters()["quarantined"] != 1 {
				t.Error("quarantined counter not set")
			}
			ctx := context.Background()
			mustSet(t, s, "k", value("fresh"))
			mustFlush(t, s)
			if got, err := s.Get(ctx, "k"); err != nil || string(got.Value) != "fresh" {
				t.Fatalf("Get on the fresh file = %q, %v", got.Value, err)
			}
		})
	}
}

func TestQuarantineNameTaken(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	path := tempPath(t)
	taken := fmt.Sprintf("%s.corrupt-%d", path, clock.Now().Unix())
	for _, p := range []string{path, taken} {
		if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := openAt(t, path, WithQuarantineCorrupt(true), WithClock(clock))
	if got, want := s.Quarantined(), taken+"-2"; got != want {
		t.Fatalf("Quarantined() = %q, want %q", got, want)
	}
}

func TestZeroLengthFile(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, path)
	mustSet(t, s, "k", value("v"))
	mustFlush(t, s)
	if _, err := s.Get(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownLayout(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(metaFormat, uint64Bytes(99))
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	if s, err := Open(path); !errors.Is(err, ErrCorrupt) {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("Open of a file with layout version 99 = %v, want ErrCorrupt", err)
	}
}

// TestForeignBoltFile opens a bbolt file some other program wrote: its
// buckets are left alone and ours are added.
func TestForeignBoltFile(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("theirs"))
		if err != nil {
			return err
		}
		return b.Put([]byte("a"), []byte("b"))
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	s := openAt(t, path)
	mustSet(t, s, "k", value("v"))
	mustFlush(t, s)
	if _, err := s.Get(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	var _ tier.Tier = s
}
