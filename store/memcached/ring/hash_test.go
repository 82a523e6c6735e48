package ring

import (
	"hash/fnv"
	"slices"
	"testing"
)

// hashVectors are twemproxy 0.5's own hashes of a few keys, computed by its
// hashkit C sources (src/hashkit/nc_*.c, built with gcc on x86-64, where
// char is signed), one column per hash in the order of Hashes(). The keys
// cover every tail length of the word-at-a-time hashes, several blocks of
// jenkins, and bytes from 0x80 up. TestMatchesTwemproxy checks the same
// hashes, and placement, against a running nutcracker.
var hashVectors = []struct {
	key  string
	want [12]uint32
}{
	{"", [12]uint32{0, 3649838548, 0, 0, 0, 2216829733, 2216829733, 2166136261, 2166136261, 0, 0, 3735928572}},
	{"a", [12]uint32{3392050242, 3111502092, 31879, 26807, 3904355907, 2248259518, 2248273036, 84696446, 3826002220, 2472816263, 1262581116, 3768813200}},
	{"abc", [12]uint32{3977453403, 2555380112, 2088017366, 13604, 891568578, 1806675403, 88168267, 1134309195, 440920331, 3843582778, 2064434216, 2403423744}},
	{"\x80\xff", [12]uint32{13776397, 173548770, 9504104, 22360, 1465410873, 3035301522, 3045546208, 1400307634, 2489175584, 3417067344, 1769343525, 300575878}},
	{"hello world", [12]uint32{1045060183, 3141252702, 4060494820, 3402, 222957957, 2979073647, 37540583, 1418570095, 3582672807, 1333368947, 1578702139, 355681275}},
	{"twelve bytes", [12]uint32{2618991465, 1319706569, 4026614485, 17855, 3317681312, 1942464411, 3463820479, 2817114779, 482005183, 1873570136, 975996117, 2046310242}},
	{"thirteen byte", [12]uint32{3009696685, 3531762556, 1916255415, 8499, 557050982, 3841611766, 1848530664, 1714299414, 3239402408, 3445756, 3825863395, 1526567754}},
	{"user:{42}:caf\xc3\xa9", [12]uint32{791071208, 2153385825, 159362491, 10531, 2837647321, 3531262164, 3295525850, 244298388, 146037754, 2340528988, 4223642533, 1329098586}},
	{"\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a", [12]uint32{533424697, 11392185, 2308370572, 15652, 3173268809, 1339084670, 746364360, 909214, 12931016, 1937452836, 2822502790, 2716698044}},
	{"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", [12]uint32{3870891354, 4082981422, 2791788766, 17434, 3290067440, 3223256453, 1605842885, 3129890341, 2226015845, 174951233, 344931250, 3884751906}},
}

func TestHashVectors(t *testing.T) {
	t.Parallel()
	names := Hashes()
	for _, v := range hashVectors {
		for i, name := range names {
			fn, _ := lookupHash(name)
			if got := fn(v.key); got != v.want[i] {
				t.Errorf("%s(%q) = %d, twemproxy computes %d", name, v.key, got, v.want[i])
			}
		}
	}
}

// TestFNV1a64AgainstGos checks the claim of hashFNV1a_64's documentation:
// Go's hash/fnv New64a, truncated, agrees with twemproxy on ASCII keys and
// not on keys with bytes from 0x80 up.
func TestFNV1a64AgainstGos(t *testing.T) {
	t.Parallel()
	for key, same := range map[string]bool{"abc": true, "user:42": true, "caf\xe9": false, "\x80": false} {
		h := fnv.New64a()
		h.Write([]byte(key))
		if got := uint32(h.Sum64()) == hashFNV1a_64(key); got != same {
			t.Errorf("%q: Go's truncated FNV-1a 64 agrees with twemproxy's: %v, want %v", key, got, same)
		}
	}
}

func TestHashesAreAllKnown(t *testing.T) {
	t.Parallel()
	want := []string{"one_at_a_time", "md5", "crc16", "crc32", "crc32a", "fnv1_64", "fnv1a_64",
		"fnv1_32", "fnv1a_32", "hsieh", "murmur", "jenkins"}
	if got := Hashes(); !slices.Equal(got, want) {
		t.Fatalf("Hashes() = %v, want twemproxy's %v", got, want)
	}
}

// FuzzHashes checks that no hash panics on any key and that each gives the
// same answer twice, and that the hashes that sign-extend bytes agree with
// an independent reading of the rule: one_at_a_time of a key equals the
// one computed over the bytes widened by hand.
func FuzzHashes(f *testing.F) {
	for _, v := range hashVectors {
		f.Add(v.key)
	}
	f.Fuzz(func(t *testing.T, key string) {
		for _, h := range hashes {
			if a, b := h.fn(key), h.fn(key); a != b {
				t.Fatalf("%s(%q) = %d, then %d", h.name, key, a, b)
			}
		}
		var want uint32
		for i := 0; i < len(key); i++ {
			c := uint32(key[i])
			if c >= 0x80 {
				c |= 0xffffff00
			}
			want += c
			want += want << 10
			want ^= want >> 6
		}
		want += want << 3
		want ^= want >> 11
		want += want << 15
		if got := hashOneAtATime(key); got != want {
			t.Fatalf("one_at_a_time(%q) = %d, want %d", key, got, want)
		}
	})
}
