package memcached

import (
	"crypto/md5"
	"encoding/binary"
	"hash/crc32"
)

// Key hashes, bit for bit as twemproxy (nutcracker 0.5) computes them, so
// that this package and the proxy put every key on the same node.
//
// twemproxy reads key bytes through a C char, which is signed on the x86
// builds it ships as: a byte from 0x80 up enters the fnv and one_at_a_time
// hashes sign-extended (0x80 becomes 0xffffff80). charValue reproduces that.
// The tests compare every hash here with a running nutcracker.
//
// Hashes twemproxy has and this file lacks (crc16, hsieh, jenkins, murmur)
// make New return ErrUnsupported.

// hashFunc hashes a memcached key to 32 bits.
type hashFunc func(key string) uint32

// hashFuncs holds the hashes implemented exactly, by twemproxy name.
var hashFuncs = map[string]hashFunc{
	"crc32":         hashCRC32,
	"crc32a":        hashCRC32a,
	"fnv1_32":       hashFNV1_32,
	"fnv1a_32":      hashFNV1a_32,
	"fnv1_64":       hashFNV1_64,
	"fnv1a_64":      hashFNV1a_64,
	"md5":           hashMD5,
	"one_at_a_time": hashOneAtATime,
}

// knownHashes lists every hash name twemproxy accepts.
var knownHashes = []string{
	"one_at_a_time", "md5", "crc16", "crc32", "crc32a", "fnv1_64", "fnv1a_64",
	"fnv1_32", "fnv1a_32", "hsieh", "murmur", "jenkins",
}

// charValue is b read as a signed C char and widened to 32 bits.
func charValue(b byte) uint32 { return uint32(int32(int8(b))) }

// hashCRC32 is twemproxy's "crc32": 15 bits of the IEEE CRC, as libmemcached
// computed it.
func hashCRC32(key string) uint32 {
	return (crc32.ChecksumIEEE([]byte(key)) >> 16) & 0x7fff
}

// hashCRC32a is twemproxy's "crc32a": the whole IEEE CRC. With modula and
// equal weights it places keys exactly as gomemcache's ServerList does.
func hashCRC32a(key string) uint32 {
	return crc32.ChecksumIEEE([]byte(key))
}

const (
	fnv64Init  = 0xcbf29ce484222325
	fnv64Prime = 0x100000001b3
	fnv32Init  = 2166136261
	fnv32Prime = 16777619
)

// hashFNV1_64 keeps the low 32 bits of a 64-bit FNV-1.
func hashFNV1_64(key string) uint32 {
	h := uint64(fnv64Init)
	for i := 0; i < len(key); i++ {
		h *= fnv64Prime
		h ^= uint64(int64(int8(key[i])))
	}
	return uint32(h)
}

// hashFNV1a_64 is what twemproxy calls FNV-1a 64: it truncates the 64-bit
// offset basis and prime to 32 bits and works in 32 bits throughout. That
// is not FNV-1a of either width, but it is where twemproxy puts keys.
func hashFNV1a_64(key string) uint32 {
	h := uint32(fnv64Init & 0xffffffff)
	for i := 0; i < len(key); i++ {
		h ^= charValue(key[i])
		h *= uint32(fnv64Prime & 0xffffffff)
	}
	return h
}

func hashFNV1_32(key string) uint32 {
	h := uint32(fnv32Init)
	for i := 0; i < len(key); i++ {
		h *= fnv32Prime
		h ^= charValue(key[i])
	}
	return h
}

func hashFNV1a_32(key string) uint32 {
	h := uint32(fnv32Init)
	for i := 0; i < len(key); i++ {
		h ^= charValue(key[i])
		h *= fnv32Prime
	}
	return h
}

// hashMD5 is the first four bytes of the MD5 digest, little endian.
func hashMD5(key string) uint32 {
	sum := md5.Sum([]byte(key))
	return binary.LittleEndian.Uint32(sum[:4])
}

// hashOneAtATime is Bob Jenkins' one-at-a-time hash.
func hashOneAtATime(key string) uint32 {
	var h uint32
	for i := 0; i < len(key); i++ {
		h += charValue(key[i])
		h += h << 10
		h ^= h >> 6
	}
	h += h << 3
	h ^= h >> 11
	h += h << 15
	return h
}
