package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/tier"
)

type getResult struct {
	Key string `json:"key"`
	// AnsweredBy is the tier that had the key, "sql" when the source was
	// asked, or "shared" when another caller's load answered.
	AnsweredBy string `json:"answered_by"`
	Found      bool   `json:"found"`
	Value      string `json:"value,omitempty"`
	// ValueBase64 replaces Value for values that are not UTF-8 text.
	ValueBase64 []byte `json:"value_base64,omitempty"`
	Error       string `json:"error,omitempty"`
	// FailedTiers are the tiers whose operations failed for this key (the
	// chain went on below them).
	FailedTiers []string `json:"failed_tiers,omitempty"`
}

func newGetCmd(g *globals) *cobra.Command {
	var asJSON, raw, noDurable, strict bool
	cmd := &cobra.Command{
		Use:   "get -c FILE KEY...",
		Short: "Read keys through the chain and say which tier answered",
		Long: `get reads each KEY through the chain of -c, exactly as the application
does (filling the tiers above on the way back), and prints one line per key:

  KEY <TAB> ANSWERED_BY <TAB> VALUE

ANSWERED_BY is the tier that held the key (memcached, bbolt), sql when the
source was asked, with "not-found" after it for a key the source does not
have (remembered as a negative entry when negative_ttl is set). A value
that is not one line of printable text is printed quoted, Go style.

A running service holds the durable file: use --no-durable to go through
memcached and SQL only. Exit code 3 when a key does not exist.

A tier that fails (a memcached that does not answer, a durable file that
cannot be read) does not stop a Get: the chain asks the tier below. get
names the tiers that failed, with their nodes that are down, and with
--strict (the default) exits 1 when any did, so a mistyped address in FILE
does not pass for a working chain; --strict=false only warns.`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, keys []string) error {
			if raw && len(keys) != 1 {
				return usageError("--raw prints one value: give one KEY")
			}
			var opts []tiercache.Option
			if noDurable {
				opts = append(opts, tiercache.WithoutDurable())
			}
			chain, err := g.loadChain("pass --no-durable to read through memcached and SQL only", opts...)
			if err != nil {
				return err
			}
			defer chain.Close()
			var results []getResult
			missing, failed := 0, 0
			tierFailures := map[string]int{}
			for _, key := range keys {
				before := chain.Cache.Stats()
				v, err := chain.Cache.Get(cmd.Context(), key)
				delta := chain.Cache.Stats().Sub(before)
				r := getResult{Key: key, AnsweredBy: answeredBy(delta), FailedTiers: failedTiers(delta)}
				for _, name := range r.FailedTiers {
					tierFailures[name]++
				}
				switch {
				case err == nil:
					r.Found = true
					if utf8.Valid(v) {
						r.Value = string(v)
					} else {
						r.ValueBase64 = v
					}
					if raw {
						_, err := g.io.out.Write(v)
						return err
					}
				case errors.Is(err, tier.ErrNotFound):
					missing++
				default:
					failed++
					r.Error = err.Error()
				}
				results = append(results, r)
				if !asJSON {
					printGetResult(g, r, v)
				}
			}
			if asJSON {
				enc := json.NewEncoder(g.io.out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return err
				}
			}
			unreachable := reportTierFailures(g, chain.Cache.Stats(), tierFailures, len(keys))
			switch {
			case failed > 0:
				return fmt.Errorf("%d of %d keys failed", failed, len(keys))
			case strict && unreachable:
				return errors.New("a configured tier failed (--strict=false to go on without it)")
			case missing > 0:
				return &exitError{code: exitNotFound, err: errNotFoundSilent(missing, raw)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of {key, answered_by, found, value}")
	cmd.Flags().BoolVar(&raw, "raw", false, "print only the value's bytes (one KEY)")
	cmd.Flags().BoolVar(&noDurable, "no-durable", false, "leave the durable tier out (a running service holds the file)")
	cmd.Flags().BoolVar(&strict, "strict", true, "exit 1 when a configured tier failed, even if a tier below answered")
	return cmd
}

// errNotFoundSilent is nil, which tells run to print nothing more, unless
// --raw left the missing key unreported.
func errNotFoundSilent(n int, raw bool) error {
	if raw {
		return errors.New("not found")
	}
	return nil
}

func printGetResult(g *globals, r getResult, v []byte) {
	switch {
	case r.Error != "":
		fmt.Fprintf(g.io.out, "%s\t%s\terror: %s\n", r.Key, r.AnsweredBy, r.Error)
	case !r.Found:
		fmt.Fprintf(g.io.out, "%s\t%s\tnot-found\n", r.Key, r.AnsweredBy)
	default:
		fmt.Fprintf(g.io.out, "%s\t%s\t%s\n", r.Key, r.AnsweredBy, displayValue(v))
	}
}

// displayValue is v as is when it is one line of printable UTF-8, and
// quoted otherwise.
func displayValue(v []byte) string {
	if !utf8.Valid(v) {
		return strconv.Quote(string(v))
	}
	for _, r := range string(v) {
		if r < 0x20 || r == 0x7f {
			return strconv.Quote(string(v))
		}
	}
	return string(v)
}

// failedTiers are the tiers with failed operations in d.
func failedTiers(d tier.Stats) []string {
	var names []string
	for _, t := range d.Tiers {
		if t.Errors > 0 {
			names = append(names, t.Name)
		}
	}
	return names
}

// reportTierFailures writes a line to standard error for each tier that
// failed on some of the keys, naming its nodes that are not up (or all of
// them when none is marked down yet), and says
// whether there was any.
func reportTierFailures(g *globals, s tier.Stats, failures map[string]int, keys int) bool {
	for _, t := range s.Tiers {
		n := failures[t.Name]
		if n == 0 {
			continue
		}
		var down, all []string
		for _, node := range t.Nodes {
			desc := fmt.Sprintf("%s (%s, %s)", node.Name, node.Addr, node.State)
			all = append(all, desc)
			if node.State != "up" {
				down = append(down, desc)
			}
		}
		line := fmt.Sprintf("tiercache: tier %s failed on %d of %d keys", t.Name, n, keys)
		switch {
		case len(down) > 0:
			line += "; not up: " + strings.Join(down, ", ")
		case len(all) > 0:
			// Too few failures yet to mark a node down: name them all.
			line += "; nodes: " + strings.Join(all, ", ")
		}
		fmt.Fprintln(g.io.err, line)
	}
	return len(failures) > 0
}

// answeredBy names who answered a single Get from the stats before and
// after it: the first tier with a hit, the source, or another caller's
// load.
func answeredBy(d tier.Stats) string {
	for _, t := range d.Tiers {
		if t.Hits > 0 {
			return t.Name
		}
	}
	switch {
	case d.Loader.Statements > 0:
		return "sql"
	case d.StaleServed > 0:
		return "stale"
	case d.SharedWaits > 0:
		return "shared"
	}
	return "-"
}
