package main

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/tiercache/tiercache/tier"
)

type inspectFlags struct {
	lockTimeout time.Duration
	copyFirst   bool
	top         int
	separators  string
	json        bool
}

func newInspectCmd(g *globals) *cobra.Command {
	var fl inspectFlags
	cmd := &cobra.Command{
		Use:   "inspect [FILE]",
		Short: "Show what a durable (bbolt) file holds",
		Long: `inspect reads a durable file and reports its entries and bytes, how many
have expired or are negative (a remembered "no such row"), the oldest and
newest expiry, the largest values and the entries by key prefix.

The file is opened read-only. bbolt lets no reader in beside a writer, so
with a service running inspect gives up after --lock-timeout (exit code 4)
instead of waiting; pass --copy to inspect a copy taken without any lock
(the service is never held up; a copy torn by a concurrent commit is taken
again). While inspect holds the file, a service that starts waits for it up
to its own lock_timeout.

FILE defaults to durable.path of -c.`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			path, err := g.durablePath(a)
			if err != nil {
				return err
			}
			return runInspect(cmd, g, path, fl)
		},
	}
	cmd.Flags().DurationVar(&fl.lockTimeout, "lock-timeout", time.Second, "give up when a writer holds the file this long")
	cmd.Flags().BoolVar(&fl.copyFirst, "copy", false, "inspect a copy of the file, taken without a lock (beside a running service)")
	cmd.Flags().IntVar(&fl.top, "top", 10, "how many of the largest values and key prefixes to list")
	cmd.Flags().StringVar(&fl.separators, "prefix-separators", ":/", "a key's prefix ends at the first of these characters")
	cmd.Flags().BoolVar(&fl.json, "json", false, "print the report as JSON")
	return cmd
}

// inspectReport is what inspect finds.
type inspectReport struct {
	Path          string        `json:"path"`
	FileBytes     int64         `json:"file_bytes"`
	Copy          bool          `json:"copy,omitempty"`
	Entries       int64         `json:"entries"`
	KeyBytes      int64         `json:"key_bytes"`
	ValueBytes    int64         `json:"value_bytes"`
	Expired       int64         `json:"expired"`
	Negative      int64         `json:"negative"`
	NeverExpire   int64         `json:"never_expire"`
	OldestExpiry  *time.Time    `json:"oldest_expiry,omitempty"`
	NewestExpiry  *time.Time    `json:"newest_expiry,omitempty"`
	Largest       []sizedKey    `json:"largest"`
	Prefixes      []prefixCount `json:"prefixes"`
	OtherPrefixes int           `json:"other_prefixes"`
}

type sizedKey struct {
	Key   string `json:"key"`
	Bytes int    `json:"bytes"`
}

type prefixCount struct {
	Prefix  string `json:"prefix"`
	Entries int64  `json:"entries"`
	Bytes   int64  `json:"bytes"`
}

func runInspect(cmd *cobra.Command, g *globals, path string, fl inspectFlags) error {
	ctx := cmd.Context()
	store, cleanup, err := openReadOnly(ctx, path, fl.lockTimeout, fl.copyFirst)
	if err != nil {
		return err
	}
	defer cleanup()
	defer store.Close()

	rep := inspectReport{Path: path, Copy: fl.copyFirst}
	if info, err := os.Stat(path); err == nil {
		rep.FileBytes = info.Size()
	}
	total := store.Counters()["entries"]
	var scanned atomic.Int64
	bar := startProgress(g.io, total, "inspecting", false, scanned.Load)
	now := time.Now()
	largest := &keyHeap{}
	prefixes := map[string]*prefixCount{}
	err = store.Scan(ctx, func(key string, e tier.Entry) error {
		scanned.Add(1)
		rep.Entries++
		rep.KeyBytes += int64(len(key))
		rep.ValueBytes += int64(len(e.Value))
		if e.Negative {
			rep.Negative++
		}
		if e.Expired(now) {
			rep.Expired++
		}
		if e.Expires.IsZero() {
			rep.NeverExpire++
		} else {
			exp := e.Expires
			if rep.OldestExpiry == nil || exp.Before(*rep.OldestExpiry) {
				rep.OldestExpiry = &exp
			}
			if rep.NewestExpiry == nil || exp.After(*rep.NewestExpiry) {
				rep.NewestExpiry = &exp
			}
		}
		if fl.top > 0 && !e.Negative {
			heap.Push(largest, sizedKey{Key: key, Bytes: len(e.Value)})
			if largest.Len() > fl.top {
				heap.Pop(largest)
			}
		}
		p := keyPrefix(key, fl.separators)
		pc := prefixes[p]
		if pc == nil {
			pc = &prefixCount{Prefix: p}
			prefixes[p] = pc
		}
		pc.Entries++
		pc.Bytes += int64(len(key) + len(e.Value))
		return nil
	})
	bar.finish()
	if err != nil {
		return err
	}
	rep.Largest = append([]sizedKey(nil), (*largest)...)
	sort.Slice(rep.Largest, func(i, j int) bool { return rep.Largest[i].Bytes > rep.Largest[j].Bytes })
	for _, pc := range prefixes {
		rep.Prefixes = append(rep.Prefixes, *pc)
	}
	sort.Slice(rep.Prefixes, func(i, j int) bool {
		a, b := rep.Prefixes[i], rep.Prefixes[j]
		return a.Entries > b.Entries || a.Entries == b.Entries && a.Prefix < b.Prefix
	})
	if fl.top >= 0 && len(rep.Prefixes) > fl.top {
		rep.OtherPrefixes = len(rep.Prefixes) - fl.top
		rep.Prefixes = rep.Prefixes[:fl.top]
	}
	if fl.json {
		enc := json.NewEncoder(g.io.out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printInspect(g.io.out, rep)
	return nil
}

// keyPrefix is key up to (and with) its first separator, or "(none)".
func keyPrefix(key, separators string) string {
	if i := strings.IndexAny(key, separators); i >= 0 {
		return key[:i+1]
	}
	return "(no prefix)"
}

func printInspect(w io.Writer, r inspectReport) {
	what := r.Path
	if r.Copy {
		what += " (a copy taken " + time.Now().Format(time.RFC3339) + ")"
	}
	fmt.Fprintf(w, "file          %s, %s on disk\n", what, humanBytes(r.FileBytes))
	fmt.Fprintf(w, "entries       %d (%s of keys, %s of values)\n", r.Entries, humanBytes(r.KeyBytes), humanBytes(r.ValueBytes))
	fmt.Fprintf(w, "expired       %d (the GC deletes them)\n", r.Expired)
	fmt.Fprintf(w, "negative      %d (remembered missing rows)\n", r.Negative)
	fmt.Fprintf(w, "never expire  %d\n", r.NeverExpire)
	if r.OldestExpiry != nil {
		fmt.Fprintf(w, "expiry        oldest %s (%s), newest %s (%s)\n",
			r.OldestExpiry.Format(time.RFC3339), relative(*r.OldestExpiry), r.NewestExpiry.Format(time.RFC3339), relative(*r.NewestExpiry))
	}
	if len(r.Largest) > 0 {
		fmt.Fprintf(w, "largest values:\n")
		for _, k := range r.Largest {
			fmt.Fprintf(w, "  %10s  %s\n", humanBytes(int64(k.Bytes)), printableKey(k.Key))
		}
	}
	if len(r.Prefixes) > 0 {
		fmt.Fprintf(w, "entries by key prefix:\n")
		for _, p := range r.Prefixes {
			fmt.Fprintf(w, "  %10d  %10s  %s\n", p.Entries, humanBytes(p.Bytes), printableKey(p.Prefix))
		}
		if r.OtherPrefixes > 0 {
			fmt.Fprintf(w, "  (%d more prefixes)\n", r.OtherPrefixes)
		}
	}
}

func relative(t time.Time) string {
	d := time.Until(t).Round(time.Second)
	if d < 0 {
		return (-d).String() + " ago"
	}
	return "in " + d.String()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// printableKey quotes a key that would garble the terminal.
func printableKey(k string) string {
	for _, r := range k {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return fmt.Sprintf("%q", k)
		}
	}
	return k
}

// keyHeap is a min-heap of keys by value size, to keep the largest N.
type keyHeap []sizedKey

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i].Bytes < h[j].Bytes }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(sizedKey)) }
func (h *keyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
