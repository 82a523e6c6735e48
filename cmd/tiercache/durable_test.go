package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/tier"
)

// fillDurable writes a durable file: live entries under two prefixes,
// expired ones, negative ones and one large value.
func fillDurable(t *testing.T, path string, live, expired int) {
	t.Helper()
	s, err := boltdb.Open(path, boltdb.WithGCInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	future, past := time.Now().Add(time.Hour), time.Now().Add(-time.Hour)
	set := func(key string, e tier.Entry) {
		if err := s.Set(ctx, key, e); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < live; i++ {
		prefix := "user:"
		if i%4 == 0 {
			prefix = "item:"
		}
		set(fmt.Sprintf("%s%d", prefix, i), tier.Entry{Value: []byte(strings.Repeat("v", 100)), Expires: future})
	}
	for i := 0; i < expired; i++ {
		set(fmt.Sprintf("old:%d", i), tier.Entry{Value: []byte(strings.Repeat("o", 1000)), Expires: past})
	}
	set("neg:1", tier.Entry{Negative: true, Expires: future})
	set("big", tier.Entry{Value: []byte(strings.Repeat("b", 50000))})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func inspectJSON(t *testing.T, args ...string) inspectReport {
	t.Helper()
	out := mustCLI(t, exitOK, "", append([]string{"inspect", "--json"}, args...)...)
	var rep inspectReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return rep
}

func TestInspectGCCompact(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cache.db")
	fillDurable(t, path, 400, 2000)

	rep := inspectJSON(t, path)
	if rep.Entries != 2402 || rep.Expired != 2000 || rep.Negative != 1 || rep.NeverExpire != 1 {
		t.Fatalf("inspect: %+v", rep)
	}
	if len(rep.Largest) == 0 || rep.Largest[0].Key != "big" || rep.Largest[0].Bytes != 50000 {
		t.Errorf("largest: %+v", rep.Largest)
	}
	if rep.Prefixes[0].Prefix != "old:" || rep.Prefixes[0].Entries != 2000 || rep.Prefixes[1].Prefix != "user:" || rep.Prefixes[1].Entries != 300 {
		t.Errorf("prefixes: %+v", rep.Prefixes)
	}
	if rep.OldestExpiry == nil || !rep.OldestExpiry.Before(time.Now()) || !rep.NewestExpiry.After(time.Now()) {
		t.Errorf("expiry range %v .. %v", rep.OldestExpiry, rep.NewestExpiry)
	}
	text := mustCLI(t, exitOK, "", "inspect", path)
	for _, want := range []string{"entries       2402", "expired       2000", "negative      1", "old:", "big"} {
		if !strings.Contains(text, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, text)
		}
	}

	out := mustCLI(t, exitOK, "", "gc", path)
	if !strings.Contains(out, "deleted 2000 expired entries") || !strings.Contains(out, "402 entries") {
		t.Fatalf("gc: %s", out)
	}
	if rep := inspectJSON(t, path); rep.Entries != 402 || rep.Expired != 0 {
		t.Fatalf("after gc: %+v", rep)
	}

	before := fileSize(t, path)
	out = mustCLI(t, exitOK, "", "compact", path)
	after := fileSize(t, path)
	if after >= before || !strings.Contains(out, "freed") {
		t.Fatalf("compact: %d → %d bytes: %s", before, after, out)
	}
	if rep := inspectJSON(t, path); rep.Entries != 402 || rep.Largest[0].Key != "big" {
		t.Fatalf("after compact: %+v", rep)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*compact*")); len(leftovers) > 0 {
		t.Errorf("compact left %v behind", leftovers)
	}
}

// TestDurableCommandsBesideAService holds the file as a service does: the
// commands give up quickly with exit code 4, and inspect --copy works.
func TestDurableCommandsBesideAService(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cache.db")
	fillDurable(t, path, 10, 0)
	service, err := boltdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()

	for _, cmd := range []string{"inspect", "gc", "compact"} {
		start := time.Now()
		code, _, stderr := cli(t, "", cmd, "--lock-timeout", "50ms", path)
		// Only inspect has --copy; gc and compact can only wait.
		if code != exitBusy || !strings.Contains(stderr, "Stop the service") || strings.Contains(stderr, "--copy") != (cmd == "inspect") {
			t.Errorf("%s beside a service: exit %d, %q; want %d and a hint", cmd, code, stderr, exitBusy)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s took %v to give up", cmd, took)
		}
	}
	if rep := inspectJSON(t, "--copy", path); rep.Entries != 12 || !rep.Copy {
		t.Fatalf("inspect --copy: %+v", rep)
	}
	// The service never noticed.
	if err := service.Set(context.Background(), "after", tier.Entry{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// TestProgressBarsOnATerminal runs the commands that draw progress bars as
// if standard output were a terminal: the bars go to standard error, and
// the reports are unchanged.
func TestProgressBarsOnATerminal(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cache.db")
	fillDurable(t, path, 300, 300)
	for _, args := range [][]string{{"inspect", path}, {"gc", path}, {"compact", path}} {
		var out, errOut strings.Builder
		code := run(context.Background(), args, stdio{in: strings.NewReader(""), out: &out, err: &errOut, terminal: true})
		if code != exitOK || !strings.Contains(out.String(), path) {
			t.Fatalf("%v on a terminal: exit %d\n%s\n%s", args, code, out.String(), errOut.String())
		}
	}
}
