package ring

import "strings"

// hashTagged returns the part of key that is hashed under the hash tag
// open, close, twemproxy's rule: the bytes between the first open and the
// first close after it. When key has no open, no close after it, or
// nothing between the two, the whole key is hashed. Only the first open
// counts: in "{}{a}" the tag is empty, so the whole key is hashed.
func hashTagged(key string, open, close byte) string {
	start := strings.IndexByte(key, open)
	if start < 0 {
		return key
	}
	n := strings.IndexByte(key[start+1:], close)
	if n <= 0 {
		return key
	}
	return key[start+1 : start+1+n]
}
