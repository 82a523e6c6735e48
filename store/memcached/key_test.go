package memcached

import (
	"strings"
	"testing"
)

func TestKeyEncoding(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 250)
	tests := []struct {
		name       string
		prefix     string
		key        string
		wantHashed bool
	}{
		{"legal", "", "user:42", false},
		{"utf-8 is legal", "", "ключ", false},
		{"250 bytes", "", long, false},
		{"251 bytes", "", long + "k", true},
		{"250 bytes with prefix", "p:", long, true},
		{"248 bytes with prefix", "p:", long[:248], false},
		{"empty", "", "", true},
		{"space", "", "a b", true},
		{"tab", "", "a\tb", true},
		{"crlf", "", "a\r\nb", true},
		{"nul", "", "a\x00", true},
		{"del", "", "a\x7f", true},
		{"starts with the marker", "", hashedMarker + "x", true},
		{"marker inside is fine", "", "x" + hashedMarker, false},
		{"tilde alone is fine", "", "~home", false},
	}
	for _, tt := range tests {
		c := keyCodec{prefix: tt.prefix}
		wire, hashed := c.encode(tt.key)
		if hashed != tt.wantHashed {
			t.Errorf("%s: hashed = %v, want %v", tt.name, hashed, tt.wantHashed)
		}
		if !hashed && wire != tt.prefix+tt.key {
			t.Errorf("%s: legal key changed to %q", tt.name, wire)
		}
		if hashed && (len(wire) != len(tt.prefix)+hashedKeyLen || !strings.HasPrefix(wire, tt.prefix+hashedMarker)) {
			t.Errorf("%s: hashed form %q", tt.name, wire)
		}
	}
}

// FuzzKeyEncoding checks the codec's promises for any pair of keys: the
// wire key is always legal for memcached and at most 250 bytes, encoding
// is deterministic, a key travels unchanged or hashed and the two forms
// are told apart by the marker, and distinct keys get distinct wire keys.
func FuzzKeyEncoding(f *testing.F) {
	for _, seed := range [][2]string{
		{"", "a"}, {"a b", "~h:x"}, {strings.Repeat("k", 251), strings.Repeat("k", 250)},
		{"a\r\nb", "a\x00b"}, {"ключ", "\xff"}, {"~h:", "~h"},
	} {
		f.Add(seed[0], seed[1], "")
		f.Add(seed[0], seed[1], "app:")
	}
	f.Fuzz(func(t *testing.T, a, b, prefix string) {
		if len(prefix) > maxPrefixLen || !legalKeyBytes(prefix) {
			t.Skip("WithKeyPrefix refuses this prefix")
		}
		c := keyCodec{prefix: prefix}
		wa, ha := c.encode(a)
		if len(wa) == 0 || len(wa) > maxKeyLen || !legalKeyBytes(wa) {
			t.Fatalf("encode(%q) = %q: not a legal memcached key", a, wa)
		}
		if again, _ := c.encode(a); again != wa {
			t.Fatalf("encode(%q) not deterministic: %q then %q", a, wa, again)
		}
		rest, ok := strings.CutPrefix(wa, prefix)
		if !ok {
			t.Fatalf("encode(%q) = %q lost the prefix", a, wa)
		}
		if ha != strings.HasPrefix(rest, hashedMarker) {
			t.Fatalf("encode(%q) = %q, hashed=%v: marker does not tell the forms apart", a, wa, ha)
		}
		if !ha && rest != a {
			t.Fatalf("encode(%q) = %q: a pass-through key changed", a, wa)
		}
		if wb, _ := c.encode(b); a != b && wa == wb {
			t.Fatalf("encode(%q) == encode(%q) == %q", a, b, wa)
		}
	})
}
