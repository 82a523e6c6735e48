package ring

import (
	"strings"
	"testing"
)

func TestHashTagged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, key, want string
	}{
		{"no tag", "user:42:name", "user:42:name"},
		{"tag", "user:{42}:name", "42"},
		{"tag first", "{42}:name", "42"},
		{"tag last", "user:{42}", "42"},
		{"empty tag hashes the whole key", "user:{}:name", "user:{}:name"},
		{"unclosed", "user:{42:name", "user:{42:name"},
		{"close before open", "user}:{42", "user}:{42"},
		{"close before open, then closed", "a}{b}", "b"},
		{"only the first open counts", "{}{second}", "{}{second}"},
		{"nested", "{{42}}", "{42"},
		{"first close after the open", "{a}b}", "a"},
		{"bytes from 0x80 up", "x{\xe9\xff}y", "\xe9\xff"},
		{"empty key", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hashTagged(tt.key, '{', '}'); got != tt.want {
				t.Errorf("hashTagged(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
	// A tag of two equal bytes works too: twemproxy looks for the second
	// after the first.
	if got := hashTagged("a$b$c", '$', '$'); got != "b" {
		t.Errorf("hashTagged with $$ = %q, want %q", got, "b")
	}
}

// FuzzHashTagged checks hashTagged against twemproxy's rule stated
// directly: either the whole key, or the non-empty run of bytes right
// after the first open byte, up to the first close byte after it.
func FuzzHashTagged(f *testing.F) {
	for _, k := range []string{"", "{}", "a{b}c", "{{x}}", "}{", "{", "a{b", "$x$"} {
		f.Add(k, byte('{'), byte('}'))
	}
	f.Add("a$b$c", byte('$'), byte('$'))
	f.Fuzz(func(t *testing.T, key string, open, close byte) {
		got := hashTagged(key, open, close)
		start := strings.IndexByte(key, open)
		if start < 0 {
			if got != key {
				t.Fatalf("%q has no %q, yet hashTagged gives %q", key, open, got)
			}
			return
		}
		rest := key[start+1:]
		end := strings.IndexByte(rest, close)
		want := key
		if end > 0 {
			want = rest[:end]
		}
		if got != want {
			t.Fatalf("hashTagged(%q, %q, %q) = %q, want %q", key, open, close, got, want)
		}
	})
}
