package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache"
)

// chromium finds Debian's chromium, which scripts/test.sh installs.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("no chromium on this machine: scripts/test.sh installs Debian's chromium (scripts/apt-install.sh chromium); the live page is not tested")
	return ""
}

// headless runs chromium headless on url with extra flags, giving the
// page's script virtual seconds to run, and returns its standard output.
func headless(t *testing.T, browser, url string, extra ...string) string {
	t.Helper()
	// Generous: chromium starts slowly on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=7000"}, extra...)
	cmd := exec.CommandContext(ctx, browser, append(args, url)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", extra, err, out)
	}
	return string(out)
}

// TestLivePageInABrowser loads the stats port's page in headless chromium
// against a running chain, after its script has polled, and checks the
// numbers it rendered against the stats JSON. With
// TIERCACHE_PAGE_SCREENSHOT=FILE it also saves a screenshot there (the one
// in docs/ comes from it).
func TestLivePageInABrowser(t *testing.T) {
	browser := chromium(t)
	r := newRig(t, 20, "stats:\n  listen: 127.0.0.1:0\n")
	service, err := tiercache.Load(r.config)
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()
	ctx := context.Background()
	for _, k := range []string{"1", "2", "3", "1", "1", "2", "404"} {
		_, _ = service.Cache.Get(ctx, k)
	}
	var stats map[string]any
	if err := json.Unmarshal([]byte(mustCLI(t, exitOK, "", "stats", "--addr", service.StatsAddr())), &stats); err != nil {
		t.Fatal(err)
	}
	url := "http://" + service.StatsAddr() + "/"

	dom := headless(t, browser, url, "--dump-dom")
	if !strings.Contains(dom, `data-polls="`) {
		t.Fatalf("the page's script did not poll:\n%s", dom)
	}
	cell := func(rowID, field string) string {
		t.Helper()
		re := regexp.MustCompile(`<tr id="` + regexp.QuoteMeta(rowID) + `">.*?data-field="` + field + `"[^>]*>([^<]*)<`)
		m := re.FindStringSubmatch(dom)
		if m == nil {
			t.Fatalf("no %s in row %s:\n%s", field, rowID, dom)
		}
		return m[1]
	}
	text := func(id string) string {
		t.Helper()
		m := regexp.MustCompile(`id="` + id + `"[^>]*>([^<]*)<`).FindStringSubmatch(dom)
		if m == nil {
			t.Fatalf("no #%s:\n%s", id, dom)
		}
		return m[1]
	}
	num := func(v any) string { return fmt.Sprintf("%d", int64(v.(float64))) }
	mc := stats["memcached"].(map[string]any)
	for _, f := range []string{"hits", "misses", "forward_error"} {
		if got, want := cell("pool-memcached", f), num(mc[f]); got != want {
			t.Errorf("memcached %s: page shows %q, stats say %s", f, got, want)
		}
	}
	hits, misses := mc["hits"].(float64), mc["misses"].(float64)
	if got, want := cell("pool-memcached", "hit_ratio"), fmt.Sprintf("%.1f%%", 100*hits/(hits+misses)); got != want {
		t.Errorf("memcached hit ratio: page shows %q, want %q", got, want)
	}
	if got := cell("node-memcached-cache-a", "state"); got != "up" {
		t.Errorf("node cache-a: page shows %q, want up", got)
	}
	if got, want := text("loader_statements"), num(stats["loader_statements"]); got != want {
		t.Errorf("loader statements: page shows %q, stats say %s", got, want)
	}
	if got := text("loader_latency"); !strings.HasSuffix(got, " ms") {
		t.Errorf("loader latency: page shows %q", got)
	}
	if got := text("status"); got != "live" {
		t.Errorf("status: %q", got)
	}

	if shot := os.Getenv("TIERCACHE_PAGE_SCREENSHOT"); shot != "" {
		abs, err := filepath.Abs(shot)
		if err != nil {
			t.Fatal(err)
		}
		// Traffic while the page polls, so that its charts have something
		// to show: Gets of keys 1..40 of which the source has 20.
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				_, _ = service.Cache.Get(ctx, fmt.Sprint(1+i*7%40))
				if i%50 == 0 {
					_ = service.Cache.Delete(ctx, fmt.Sprint(1+i%20))
				}
			}
		}()
		headless(t, browser, url, "--screenshot="+abs, "--window-size=1280,900", "--hide-scrollbars", "--virtual-time-budget=30000")
		close(stop)
		<-done
		if st, err := os.Stat(abs); err != nil || st.Size() == 0 {
			t.Fatalf("screenshot: %v", err)
		}
	}
}
