package ring

import (
	"crypto/md5"
	"encoding/binary"
	"hash/crc32"
	"math/bits"
)

// The key hashes, bit for bit as twemproxy 0.5 computes them.
//
// twemproxy reads key bytes through a plain C char, which is signed on the
// x86 and most ARM Linux builds it ships as: where a hash widens such a
// byte, a byte from 0x80 up enters it sign-extended (0x80 as 0xffffff80).
// one_at_a_time, the four fnv hashes and the third tail byte of hsieh do
// this; signedByte reproduces it. The other hashes read unsigned bytes, or
// mask the byte so that the sign does not matter.

// hashFunc hashes a key to 32 bits.
type hashFunc func(key string) uint32

// hashes lists twemproxy's hashes in the order of its configuration
// documentation.
var hashes = []struct {
	name string
	fn   hashFunc
}{
	{"one_at_a_time", hashOneAtATime},
	{"md5", hashMD5},
	{"crc16", hashCRC16},
	{"crc32", hashCRC32},
	{"crc32a", hashCRC32a},
	{"fnv1_64", hashFNV1_64},
	{"fnv1a_64", hashFNV1a_64},
	{"fnv1_32", hashFNV1_32},
	{"fnv1a_32", hashFNV1a_32},
	{"hsieh", hashHsieh},
	{"murmur", hashMurmur},
	{"jenkins", hashJenkins},
}

// Hashes returns the names of twemproxy's key hashes, all of which New
// accepts.
func Hashes() []string {
	names := make([]string, len(hashes))
	for i, h := range hashes {
		names[i] = h.name
	}
	return names
}

func lookupHash(name string) (hashFunc, bool) {
	for _, h := range hashes {
		if h.name == name {
			return h.fn, true
		}
	}
	return nil, false
}

// signedByte is b read as a signed C char and widened to 32 bits.
func signedByte(b byte) uint32 { return uint32(int32(int8(b))) }

// hashOneAtATime is Bob Jenkins' one-at-a-time hash over signed bytes.
func hashOneAtATime(key string) uint32 {
	var h uint32
	for i := 0; i < len(key); i++ {
		h += signedByte(key[i])
		h += h << 10
		h ^= h >> 6
	}
	h += h << 3
	h ^= h >> 11
	h += h << 15
	return h
}

// hashMD5 is the first four bytes of the key's MD5 digest, read little
// endian.
func hashMD5(key string) uint32 {
	// A key memcached accepts fits the stack buffer, and md5.Sum does not
	// keep it: no allocation, where []byte(key) would make one past 32
	// bytes.
	var buf [250]byte
	var sum [md5.Size]byte
	if len(key) <= len(buf) {
		sum = md5.Sum(buf[:copy(buf[:], key)])
	} else {
		sum = md5.Sum([]byte(key))
	}
	return binary.LittleEndian.Uint32(sum[:4])
}

// crc16Table is the table of the CCITT polynomial 0x1021, most significant
// bit first (the XMODEM CRC).
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

// hashCRC16 is twemproxy's crc16: the XMODEM CRC computed in a 32-bit
// register that is never masked, so that the bits shifted out above the
// sixteenth stay in the result.
func hashCRC16(key string) uint32 {
	var crc uint32
	for i := 0; i < len(key); i++ {
		crc = crc<<8 ^ uint32(crc16Table[byte(crc>>8)^key[i]])
	}
	return crc
}

// hashCRC32 is twemproxy's crc32, inherited from libmemcached: fifteen bits
// of the IEEE CRC-32.
func hashCRC32(key string) uint32 {
	return crc32IEEE(key) >> 16 & 0x7fff
}

// hashCRC32a is the whole IEEE CRC-32. With modula and equal weights it
// places keys as gomemcache's ServerList does.
func hashCRC32a(key string) uint32 { return crc32IEEE(key) }

// crc32IEEE is crc32.ChecksumIEEE of key, a byte at a time: the library's
// faster code takes a []byte, which would be allocated for every key.
func crc32IEEE(key string) uint32 {
	crc := ^uint32(0)
	for i := 0; i < len(key); i++ {
		crc = crc32.IEEETable[byte(crc)^key[i]] ^ crc>>8
	}
	return ^crc
}

const (
	fnv64Offset = 0xcbf29ce484222325
	fnv64Prime  = 0x100000001b3
	fnv32Offset = 0x811c9dc5
	fnv32Prime  = 0x01000193
)

// hashFNV1_64 is FNV-1 in 64 bits over sign-extended bytes, truncated to
// its low 32 bits.
func hashFNV1_64(key string) uint32 {
	h := uint64(fnv64Offset)
	for i := 0; i < len(key); i++ {
		h *= fnv64Prime
		h ^= uint64(int64(int8(key[i])))
	}
	return uint32(h)
}

// hashFNV1a_64 is what twemproxy calls FNV-1a 64: it truncates the 64-bit
// offset basis and prime to 32 bits (the prime becomes 0x1b3) and works in
// 32 bits over sign-extended bytes. The low 32 bits of a product depend only
// on the low 32 bits of its factors, so for ASCII keys this is the low half
// of Go's hash/fnv New64a; a byte from 0x80 up, xored in as 0xffffff..,
// sends the key elsewhere.
func hashFNV1a_64(key string) uint32 {
	h := uint32(fnv64Offset & 0xffffffff)
	for i := 0; i < len(key); i++ {
		h ^= signedByte(key[i])
		h *= fnv64Prime & 0xffffffff
	}
	return h
}

// hashFNV1_32 is FNV-1 in 32 bits over sign-extended bytes.
func hashFNV1_32(key string) uint32 {
	h := uint32(fnv32Offset)
	for i := 0; i < len(key); i++ {
		h *= fnv32Prime
		h ^= signedByte(key[i])
	}
	return h
}

// hashFNV1a_32 is FNV-1a in 32 bits over sign-extended bytes.
func hashFNV1a_32(key string) uint32 {
	h := uint32(fnv32Offset)
	for i := 0; i < len(key); i++ {
		h ^= signedByte(key[i])
		h *= fnv32Prime
	}
	return h
}

// le16 reads two bytes of s from i, little endian.
func le16(s string, i int) uint32 { return uint32(s[i]) | uint32(s[i+1])<<8 }

// hashHsieh is Paul Hsieh's SuperFastHash with twemproxy's quirk: of a
// three-byte tail, the third byte enters sign-extended.
func hashHsieh(key string) uint32 {
	if key == "" {
		return 0
	}
	var h uint32
	i := 0
	for ; len(key)-i >= 4; i += 4 {
		h += le16(key, i)
		tmp := le16(key, i+2)<<11 ^ h
		h = h<<16 ^ tmp
		h += h >> 11
	}
	switch len(key) - i {
	case 3:
		h += le16(key, i)
		h ^= h << 16
		h ^= signedByte(key[i+2]) << 18
		h += h >> 11
	case 2:
		h += le16(key, i)
		h ^= h << 11
		h += h >> 17
	case 1:
		h += uint32(key[i])
		h ^= h << 10
		h += h >> 1
	}
	h ^= h << 3
	h += h >> 5
	h ^= h << 4
	h += h >> 17
	h ^= h << 25
	h += h >> 6
	return h
}

// hashMurmur is MurmurHash2 over little-endian words, seeded as
// libmemcached seeds it: 0xdeadbeef times the key length.
func hashMurmur(key string) uint32 {
	const m = 0x5bd1e995
	n := uint32(len(key))
	h := 0xdeadbeef*n ^ n
	i := 0
	for ; len(key)-i >= 4; i += 4 {
		k := uint32(key[i]) | uint32(key[i+1])<<8 | uint32(key[i+2])<<16 | uint32(key[i+3])<<24
		k *= m
		k ^= k >> 24
		k *= m
		h *= m
		h ^= k
	}
	switch len(key) - i {
	case 3:
		h ^= uint32(key[i+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(key[i+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(key[i])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// hashJenkins is Bob Jenkins' lookup3 (hashlittle) with the initial value
// 13. twemproxy reads the key in words when it is aligned and in bytes when
// not; on a little-endian machine both read the same numbers, which are
// the ones computed here.
func hashJenkins(key string) uint32 {
	a := 0xdeadbeef + uint32(len(key)) + 13
	b, c := a, a
	if key == "" {
		return c
	}
	for len(key) > 12 {
		a += le32(key, 0)
		b += le32(key, 4)
		c += le32(key, 8)
		a, b, c = jenkinsMix(a, b, c)
		key = key[12:]
	}
	// The last block, one to twelve bytes, zero-padded.
	var last [12]byte
	copy(last[:], key)
	a += binary.LittleEndian.Uint32(last[0:])
	b += binary.LittleEndian.Uint32(last[4:])
	c += binary.LittleEndian.Uint32(last[8:])
	return jenkinsFinal(a, b, c)
}

func le32(s string, i int) uint32 {
	return uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
}

func jenkinsMix(a, b, c uint32) (uint32, uint32, uint32) {
	a -= c
	a ^= bits.RotateLeft32(c, 4)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 6)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 8)
	b += a
	a -= c
	a ^= bits.RotateLeft32(c, 16)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 19)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 4)
	b += a
	return a, b, c
}

func jenkinsFinal(a, b, c uint32) uint32 {
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return c
}
