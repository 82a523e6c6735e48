package boltdb

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// crashBatch is how many new keys the writer helper sets per flush; it
// also rewrites crashHot keys each time, so that pages are freed and
// reused as well as added.
const (
	crashBatch = 500
	crashHot   = 100
)

func crashKey(round, batch, i int) string { return fmt.Sprintf("r%d-b%06d-%04d", round, batch, i) }
func crashHotKey(i int) string            { return fmt.Sprintf("hot-%03d", i) }

// TestHelperWriter is not a test: TestKilledWhileWriting runs the test
// binary again with it, to write to a file until it is killed. It prints
// "flushed N" once batch N is on disk.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv("BOLTDB_TEST_WRITE")
	if path == "" {
		t.Skip("helper process for TestKilledWhileWriting")
	}
	round, _ := strconv.Atoi(os.Getenv("BOLTDB_TEST_ROUND"))
	s, err := Open(path, WithGCInterval(0))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	body := strings.Repeat("x", 100)
	for batch := 0; ; batch++ {
		for i := range crashBatch {
			_ = s.Set(ctx, crashKey(round, batch, i), value(body))
		}
		for i := range crashHot {
			_ = s.Set(ctx, crashHotKey(i), value(strconv.Itoa(batch)))
		}
		if err := s.Flush(ctx); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("flushed", batch)
	}
}

// crashRounds is how many times TestKilledWhileWriting kills a writer,
// spread over crashFiles files, each killed in turn, all at once: a round
// waits mostly on a process start (over a second for a binary built with
// -race, most of it not on the CPU) and on fsyncs. -short runs a tenth of
// the rounds.
const (
	crashRounds = 100
	crashFiles  = 10
)

// TestKilledWhileWriting kills a process with SIGKILL while it writes to
// a file, at a random moment, crashRounds times over: each time the file
// must open, pass bbolt's consistency check, and hold every write flushed
// before the kill. Only what was still queued may be lost.
func TestKilledWhileWriting(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rounds := crashRounds
	if testing.Short() {
		rounds /= 10
	}
	// Subtests that do not call Parallel start at once, not limited by
	// -parallel; each may fail on its own goroutine.
	var wg sync.WaitGroup
	for f := range crashFiles {
		wg.Go(func() {
			t.Run(fmt.Sprint("file", f), func(t *testing.T) {
				killWhileWriting(t, tempPath(t), rand.New(rand.NewPCG(seed, uint64(f))), rounds/crashFiles)
			})
		})
	}
	wg.Wait()
}

// killWhileWriting runs TestKilledWhileWriting's rounds on one file.
func killWhileWriting(t *testing.T, path string, rng *rand.Rand, rounds int) {
	for round := range rounds {
		flushed := runWriterUntilKilled(t, path, round, rng.IntN(4), time.Duration(rng.IntN(15))*time.Millisecond)

		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			t.Fatalf("round %d: bolt.Open after SIGKILL: %v", round, err)
		}
		err = db.View(func(tx *bolt.Tx) error {
			for cerr := range tx.Check() {
				t.Errorf("round %d: consistency check: %v", round, cerr)
			}
			return nil
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}

		s, err := Open(path, WithGCInterval(0))
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL: %v", round, err)
		}
		ctx := context.Background()
		missing := 0
		for batch := 0; batch <= flushed; batch++ {
			for i := range crashBatch {
				if _, err := s.Get(ctx, crashKey(round, batch, i)); err != nil {
					missing++
				}
			}
		}
		for i := range crashHot {
			e, err := s.Get(ctx, crashHotKey(i))
			if n, _ := strconv.Atoi(string(e.Value)); err != nil || n < flushed {
				t.Errorf("round %d: %s = %q, %v; batch %d was flushed", round, crashHotKey(i), e.Value, err, flushed)
			}
		}
		if missing > 0 {
			t.Errorf("round %d: %d keys of the %d batches flushed before the kill are missing", round, missing, flushed+1)
		}
		if c := s.Counters(); c["entries"] < int64((flushed+1)*crashBatch) {
			t.Errorf("round %d: the totals say %d entries, at least %d were flushed", round, c["entries"], (flushed+1)*crashBatch)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// runWriterUntilKilled runs TestHelperWriter on path until it has flushed
// at least minBatches batches, lets it write for delay more, kills it with
// SIGKILL, and returns the last batch it reported flushed.
func runWriterUntilKilled(t *testing.T, path string, round, minBatches int, delay time.Duration) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$")
	cmd.Env = append(os.Environ(), "BOLTDB_TEST_WRITE="+path, "BOLTDB_TEST_ROUND="+strconv.Itoa(round))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	flushed := -1
	note := func(line string) {
		if n, ok := strings.CutPrefix(line, "flushed "); ok {
			flushed, _ = strconv.Atoi(n)
		} else if strings.HasPrefix(line, "error:") {
			t.Errorf("round %d: writer: %s", round, line)
		}
	}
	deadline := time.After(time.Minute)
	for flushed < minBatches {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("round %d: writer exited after batch %d: %v", round, flushed, cmd.Wait())
			}
			note(line)
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("round %d: writer flushed only %d batches in a minute", round, flushed)
		}
	}
	time.Sleep(delay)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	for line := range lines { // what it printed before it died
		note(line)
	}
	_ = cmd.Wait()
	return flushed
}
