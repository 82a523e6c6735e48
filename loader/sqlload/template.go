package sqlload

import (
	"fmt"
	"strings"
)

// template is a query split around its IN (?) list:
// prefix + "(?,?,?)" + suffix is the query for three keys.
type template struct {
	prefix string // up to and including IN and the blanks after it
	suffix string // everything after the closing parenthesis
}

// parseTemplate finds the one IN (?) list of query. Quoted strings,
// identifiers and comments are skipped, so a '?' inside them is not a
// placeholder.
func parseTemplate(query string) (template, error) {
	lists, others, err := scanPlaceholders(query)
	if err != nil {
		return template{}, fmt.Errorf("%w: %v in %q", ErrBadQuery, err, query)
	}
	switch {
	case len(lists) == 0:
		return template{}, fmt.Errorf("%w: no IN (?) list in %q", ErrBadQuery, query)
	case len(lists) > 1:
		return template{}, fmt.Errorf("%w: %d IN (?) lists, want one, in %q", ErrBadQuery, len(lists), query)
	case others > 0:
		return template{}, fmt.Errorf("%w: %d placeholders outside the IN (?) list in %q", ErrBadQuery, others, query)
	}
	return template{prefix: query[:lists[0][0]], suffix: query[lists[0][1]:]}, nil
}

// expand returns the query for n keys.
func (t template) expand(n int) string {
	var b strings.Builder
	b.Grow(len(t.prefix) + 2*n + 1 + len(t.suffix))
	b.WriteString(t.prefix)
	b.WriteByte('(')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('?')
	}
	b.WriteByte(')')
	b.WriteString(t.suffix)
	return b.String()
}

// scanPlaceholders returns the byte ranges of the "( ? )" following the
// keyword IN, and the number of other '?' placeholders, in MySQL syntax:
// '…' and "…" strings with backslash escapes, `…` identifiers, and
// #, -- and /* */ comments are skipped.
func scanPlaceholders(q string) (lists [][2]int, others int, err error) {
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			end := closingQuote(q, i)
			if end < 0 {
				return nil, 0, fmt.Errorf("unterminated %c quote at byte %d", c, i)
			}
			i = end + 1
		case c == '#' || c == '-' && strings.HasPrefix(q[i:], "--") && (i+2 == len(q) || q[i+2] <= ' '):
			end := strings.IndexByte(q[i:], '\n')
			if end < 0 {
				return lists, others, nil
			}
			i += end + 1
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				return nil, 0, fmt.Errorf("unterminated comment at byte %d", i)
			}
			i += 2 + end + 2
		case c == '?':
			others++
			i++
		case isWordByte(c):
			start := i
			for i < len(q) && isWordByte(q[i]) {
				i++
			}
			if !strings.EqualFold(q[start:i], "IN") {
				continue
			}
			if open, end, ok := inList(q, i); ok {
				lists = append(lists, [2]int{open, end})
				i = end
			}
		default:
			i++
		}
	}
	return lists, others, nil
}

// inList reports whether q[i:] is blanks, "(", blanks, "?", blanks, ")",
// and returns where the "(" starts and the ")" ends.
func inList(q string, i int) (open, end int, ok bool) {
	i = skipBlanks(q, i)
	if i == len(q) || q[i] != '(' {
		return 0, 0, false
	}
	open = i
	i = skipBlanks(q, i+1)
	if i == len(q) || q[i] != '?' {
		return 0, 0, false
	}
	i = skipBlanks(q, i+1)
	if i == len(q) || q[i] != ')' {
		return 0, 0, false
	}
	return open, i + 1, true
}

func skipBlanks(q string, i int) int {
	for i < len(q) && (q[i] == ' ' || q[i] == '\t' || q[i] == '\n' || q[i] == '\r' || q[i] == '\f' || q[i] == '\v') {
		i++
	}
	return i
}

// closingQuote returns the index of the quote closing the one at q[start],
// or -1. A quote written twice inside a string ends the run and the next
// call starts a new one, which comes to the same; a backslash escapes the
// next byte except between backquotes.
func closingQuote(q string, start int) int {
	quote := q[start]
	for i := start + 1; i < len(q); i++ {
		switch q[i] {
		case '\\':
			if quote != '`' {
				i++
			}
		case quote:
			return i
		}
	}
	return -1
}

// isWordByte reports whether c can be part of an unquoted identifier or
// keyword. Bytes of multi-byte UTF-8 characters count, so "éIN" is one word.
func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}
