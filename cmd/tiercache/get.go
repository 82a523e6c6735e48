package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
}

func newGetCmd(g *globals) *cobra.Command {
	var asJSON, raw, noDurable bool
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
memcached and SQL only. Exit code 3 when a key does not exist.`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, keys []string) error {
			if raw && len(keys) != 1 {
				return usageError("--raw prints one value: give one KEY")
			}
			var opts []tiercache.Option
			if noDurable {
				opts = append(opts, tiercache.WithoutDurable())
			}
			chain, err := g.loadChain(opts...)
			if err != nil {
				return err
			}
			defer chain.Close()
			var results []getResult
			missing, failed := 0, 0
			for _, key := range keys {
				before := chain.Cache.Stats()
				v, err := chain.Cache.Get(cmd.Context(), key)
				r := getResult{Key: key, AnsweredBy: answeredBy(chain.Cache.Stats().Sub(before))}
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
			switch {
			case failed > 0:
				return fmt.Errorf("%d of %d keys failed", failed, len(keys))
			case missing > 0:
				return &exitError{code: exitNotFound, err: errNotFoundSilent(missing, raw)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of {key, answered_by, found, value}")
	cmd.Flags().BoolVar(&raw, "raw", false, "print only the value's bytes (one KEY)")
	cmd.Flags().BoolVar(&noDurable, "no-durable", false, "leave the durable tier out (a running service holds the file)")
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
