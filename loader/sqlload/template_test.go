package sqlload

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, query string
		want3       string // expand(3); empty when the query is bad
	}{
		{"plain", "SELECT id, body FROM articles WHERE id IN (?)",
			"SELECT id, body FROM articles WHERE id IN (?,?,?)"},
		{"lower case and blanks", "select k, v from t where k in\n\t( ? )\n order by k",
			"select k, v from t where k in\n\t(?,?,?)\n order by k"},
		{"no blank before paren", "SELECT k, v FROM t WHERE k IN(?)", "SELECT k, v FROM t WHERE k IN(?,?,?)"},
		{"mixed case IN", "SELECT k, v FROM t WHERE k iN (?) LIMIT 10", "SELECT k, v FROM t WHERE k iN (?,?,?) LIMIT 10"},
		{"question mark in string", "SELECT k, v FROM t WHERE k IN (?) AND note <> 'why?'",
			"SELECT k, v FROM t WHERE k IN (?,?,?) AND note <> 'why?'"},
		{"escaped quote in string", `SELECT k, v FROM t WHERE k IN (?) AND note <> 'it''s \' ?'`,
			`SELECT k, v FROM t WHERE k IN (?,?,?) AND note <> 'it''s \' ?'`},
		{"question mark in comments", "SELECT k, v /* ? */ FROM t -- ?\nWHERE k IN (?) # ?",
			"SELECT k, v /* ? */ FROM t -- ?\nWHERE k IN (?,?,?) # ?"},
		{"IN (?) in a comment is not the list", "SELECT k, v FROM t /* IN (?) */ WHERE k IN (?)",
			"SELECT k, v FROM t /* IN (?) */ WHERE k IN (?,?,?)"},
		{"quoted identifier", "SELECT `k?`, v FROM `in` WHERE `k?` IN (?)", "SELECT `k?`, v FROM `in` WHERE `k?` IN (?,?,?)"},
		{"word ending in in", "SELECT k, v FROM t WHERE k IN (?) AND origin = 'x'",
			"SELECT k, v FROM t WHERE k IN (?,?,?) AND origin = 'x'"},

		{"empty", "", ""},
		{"no IN list", "SELECT k, v FROM t WHERE k = ?", ""},
		{"no placeholder", "SELECT k, v FROM t WHERE k IN (1, 2)", ""},
		{"two IN lists", "SELECT k, v FROM t WHERE k IN (?) OR k2 IN (?)", ""},
		{"extra placeholder", "SELECT k, v FROM t WHERE k IN (?) AND tenant = ?", ""},
		{"list of two", "SELECT k, v FROM t WHERE k IN (?, ?)", ""},
		{"not the word IN", "SELECT k, v FROM t WHERE k JOIN (?)", ""},
		{"IN as part of a word", "SELECT k, v FROM t WHERE kIN (?)", ""},
		{"only inside a string", "SELECT k, v FROM t WHERE note = 'IN (?)'", ""},
		{"unterminated string", "SELECT k, v FROM t WHERE k IN (?) AND note = 'oops", ""},
		{"unterminated comment", "SELECT k, v FROM t WHERE k IN (?) /* oops", ""},
		{"double dash without blank is minus", "SELECT k, v FROM t WHERE k IN (?) AND x = 1--?", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := parseTemplate(tt.query)
			if tt.want3 == "" {
				if !errors.Is(err, ErrBadQuery) {
					t.Fatalf("parseTemplate(%q) error = %v, want ErrBadQuery", tt.query, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseTemplate(%q): %v", tt.query, err)
			}
			if got := tmpl.expand(3); got != tt.want3 {
				t.Errorf("expand(3)\n got %q\nwant %q", got, tt.want3)
			}
			if got, want := tmpl.expand(1), strings.Replace(tt.want3, "(?,?,?)", "(?)", 1); got != want {
				t.Errorf("expand(1)\n got %q\nwant %q", got, want)
			}
		})
	}
}

// FuzzParseTemplate checks that parsing never panics and that an accepted
// template expands to a query with exactly n placeholders, which parses
// back to the same template when n is 1.
func FuzzParseTemplate(f *testing.F) {
	for _, q := range []string{
		"SELECT id, body FROM articles WHERE id IN (?)",
		"select k, v from t where k in ( ? ) and note = 'a?b' -- ?\n",
		"SELECT k, v FROM t /* IN (?) */ WHERE k IN(?)#?",
		"SELECT `in`, \"?\" FROM t WHERE k IN (?) OR k IN (?)",
		`SELECT k, v FROM t WHERE k IN (?) AND n = 'x\'?'`,
		"IN (?)",
		"--",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, query string) {
		tmpl, err := parseTemplate(query)
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("error %v does not wrap ErrBadQuery", err)
			}
			return
		}
		for _, n := range []int{1, 2, 7} {
			expanded := tmpl.expand(n)
			lists, others, err := scanPlaceholders(expanded)
			if err != nil {
				t.Fatalf("expand(%d) = %q does not scan: %v", n, expanded, err)
			}
			placeholders := others
			if n == 1 {
				placeholders += len(lists)
			}
			if placeholders != n {
				t.Fatalf("expand(%d) = %q has %d placeholders", n, expanded, placeholders)
			}
		}
		again, err := parseTemplate(tmpl.expand(1))
		if err != nil || again != tmpl {
			t.Fatalf("expand(1) = %q parses to %+v, %v; want %+v", tmpl.expand(1), again, err, tmpl)
		}
	})
}
