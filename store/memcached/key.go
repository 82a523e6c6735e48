package memcached

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Key encoding.
//
// The chain accepts any byte string as a key; memcached accepts 1 to 250
// bytes with no space, control byte (below 0x21) or DEL (0x7f). gomemcache
// enforces the same rule (its legalKey) except that it lets the empty key
// through, which memcached then answers with ERROR. Bytes from 0x80 up are
// legal to both, so UTF-8 keys travel as they are.
//
// The rule, applied after the configured prefix:
//
//   - a key that is legal, fits in 250 bytes together with the prefix, and
//     does not start with hashedMarker is sent as prefix+key;
//   - every other key is sent as prefix + hashedMarker +
//     base64url(sha256(key)), 46 bytes after the prefix.
//
// Because keys that start with the marker are always hashed, the two forms
// never meet: a wire key starts with prefix+hashedMarker exactly when it was
// hashed. The hashed form is legal by construction (the marker and base64url
// use only printable ASCII). Two hashed keys could only collide through a
// SHA-256 collision, and even that cannot return a wrong value: the item of
// a hashed key carries the original key, which Get compares (see item.go).
const (
	// maxKeyLen is memcached's limit on a key (KEY_MAX_LENGTH).
	maxKeyLen = 250
	// hashedMarker starts every hashed key. '~' sorts last among printable
	// ASCII, which keeps hashed keys together in a key dump.
	hashedMarker = "~h:"
	// hashedKeyLen is how many bytes a hashed key takes after the prefix.
	hashedKeyLen = len(hashedMarker) + 43 // base64url of 32 bytes, unpadded
	// maxPrefixLen leaves room for a hashed key after the prefix.
	maxPrefixLen = maxKeyLen - hashedKeyLen
)

// keyCodec turns caller keys into memcached keys. Its zero value encodes
// with no prefix. It is immutable and safe for concurrent use.
type keyCodec struct {
	prefix string
}

// encode returns the memcached key for key, and whether it was hashed.
func (c keyCodec) encode(key string) (wire string, hashed bool) {
	if c.passThrough(key) {
		return c.prefix + key, false
	}
	sum := sha256.Sum256([]byte(key))
	b := make([]byte, 0, len(c.prefix)+hashedKeyLen)
	b = append(b, c.prefix...)
	b = append(b, hashedMarker...)
	b = base64.RawURLEncoding.AppendEncode(b, sum[:])
	return string(b), true
}

// passThrough reports whether key can be sent unchanged after the prefix.
func (c keyCodec) passThrough(key string) bool {
	if key == "" || len(c.prefix)+len(key) > maxKeyLen || strings.HasPrefix(key, hashedMarker) {
		return false
	}
	return legalKeyBytes(key)
}

// legalKeyBytes reports whether s has no byte memcached's text protocol
// forbids in a key: spaces and control bytes split or end the command line.
func legalKeyBytes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}
