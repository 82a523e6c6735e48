package config

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is every problem found in one file.
type Error struct {
	// File is the path the configuration was read from ("" for bytes
	// handed to Parse without a name).
	File     string
	Problems []Problem
	// Err is the error a problem found after parsing stems from (a file
	// that is locked, a server that does not resolve), for errors.Is.
	Err error
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Problem is one mistake, at a line of the file (0 when it is about the
// file as a whole).
type Problem struct {
	Line int
	Msg  string
}

// Error lists the problems one per line, "FILE:LINE: message".
func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String(e.File))
	}
	return b.String()
}

// String formats p as "file:line: message".
func (p Problem) String(file string) string {
	if file == "" {
		file = "config"
	}
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", file, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", file, p.Msg)
}

// problems collects Problems while a file is checked.
type problems []Problem

func (ps *problems) add(line int, format string, args ...any) {
	*ps = append(*ps, Problem{Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (ps problems) err(file string) error {
	if len(ps) == 0 {
		return nil
	}
	return &Error{File: file, Problems: ps}
}

var (
	lineRE     = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownRE  = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	cannotRE   = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (.*)$")
	sectionFor = map[string]string{}
)

// registerSection names the section a Go type decodes, for the message
// about an unknown key in it.
func registerSection(typeName, section string) { sectionFor[typeName] = section }

// yamlProblems turns what yaml.v3 returned into Problems. Its messages
// start with "line N:"; the ones about unknown fields and wrong kinds are
// reworded in the file's own terms. data is the file, to explain a tab.
func yamlProblems(err error, data []byte) problems {
	var msgs []string
	if te, ok := err.(*yaml.TypeError); ok {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var ps problems
	for _, m := range msgs {
		match := lineRE.FindStringSubmatch(m)
		if match == nil {
			ps.add(0, "%s", strings.TrimPrefix(m, "yaml: "))
			continue
		}
		line, _ := strconv.Atoi(match[1])
		msg := match[2]
		if u := unknownRE.FindStringSubmatch(msg); u != nil {
			where := sectionFor[u[2]]
			if where == "" {
				where = "the top level"
			}
			msg = fmt.Sprintf("unknown key %q in %s", u[1], where)
		} else if c := cannotRE.FindStringSubmatch(msg); c != nil {
			msg = fmt.Sprintf("%q is not %s", c[2], kindName(c[3]))
		} else if lines := bytes.Split(data, []byte("\n")); line >= 1 && line <= len(lines) && bytes.Contains(lines[line-1], []byte("\t")) {
			msg += " (YAML does not allow tabs for indentation: use spaces)"
		}
		ps.add(line, "%s", msg)
	}
	return ps
}

func kindName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "config."):
		return "a mapping"
	}
	return "a " + goType
}
