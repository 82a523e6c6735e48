package memcached

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	mcwire "github.com/tiercache/tiercache/store/memcached/internal/wire"
	"github.com/tiercache/tiercache/tier"
)

// What an item holds.
//
// memcached gives every item 32 bits of flags that it stores and returns
// untouched. This package uses them to say how the value is laid out:
//
//	flagsEnvelope       the value is tier.EncodeEntry's envelope
//	flagsKeyedEnvelope  uvarint(len(key)) | key | envelope
//
// Leases add records and stubs (see record.go).
//
// The keyed form is used for hashed keys only (see key.go). Storing the
// caller's key costs its length once per item and makes Get exact: a hashed
// key whose stored key differs is a miss, never someone else's value.
// Both values fit in 16 bits, since memcached before 1.2.1 kept only 16.
// An item with any other flags was not written by this package (another
// application sharing the key space) and reads as a miss.
const (
	flagsEnvelope      uint32 = 0x7401
	flagsKeyedEnvelope uint32 = 0x7402
)

// itemOverhead is how many bytes memcached 1.6 adds to key and value when it
// checks an item against its size limit (-I): the item header, the CAS
// value, the key's terminating NUL, the value's trailing CRLF, and 4 bytes
// for flags because ours are never zero. Measured on memcached 1.6.18 with
// -I 1m: an item with non-zero flags is stored exactly when
// len(key) + len(value) + 63 <= 1048576 (TestItemOverhead checks it).
// Counting it lets Set refuse a value the server would refuse, without
// sending a megabyte to find out.
const itemOverhead = 63

// errKeyMismatch reports a hashed item whose stored key is not the key
// asked for: a SHA-256 collision, or an item another program wrote.
var errKeyMismatch = errors.New("memcached: item belongs to another key")

// newItem builds the memcached item for key. wire is the encoded key and
// hashed tells whether it was hashed.
func newItem(key, wire string, hashed bool, e tier.Entry, expiration int32) *mcwire.Item {
	envelope := tier.EncodeEntry(e)
	if !hashed {
		return &mcwire.Item{Key: wire, Value: envelope, Flags: flagsEnvelope, Expiration: expiration}
	}
	value := make([]byte, 0, binary.MaxVarintLen64+len(key)+len(envelope))
	value = binary.AppendUvarint(value, uint64(len(key)))
	value = append(value, key...)
	value = append(value, envelope...)
	return &mcwire.Item{Key: wire, Value: value, Flags: flagsKeyedEnvelope, Expiration: expiration}
}

// decodeItem returns the entry an item with flags and value holds for
// key. The entry's Value aliases value.
func decodeItem(key string, hashed bool, flags uint32, value []byte) (tier.Entry, error) {
	switch {
	case !hashed && flags == flagsEnvelope:
		return tier.DecodeEntry(value)
	case hashed && flags == flagsKeyedEnvelope:
		n, size := binary.Uvarint(value)
		if size <= 0 || n > uint64(len(value)-size) {
			return tier.Entry{}, fmt.Errorf("%w: bad key length", tier.ErrBadEnvelope)
		}
		stored := value[size : size+int(n)]
		if string(stored) != key {
			return tier.Entry{}, errKeyMismatch
		}
		return tier.DecodeEntry(value[size+int(n):])
	case !hashed && flags == flagsRecord, hashed && flags == flagsKeyedRecord:
		return decodeRecordEntry(key, hashed, value)
	case isStub(flags, value):
		return tier.Entry{}, errNoEntry // a lease in progress (see record.go)
	default:
		return tier.Entry{}, fmt.Errorf("%w: item flags %#x", tier.ErrBadEnvelope, flags)
	}
}

// maxRelativeExpiration is memcached's REALTIME_MAXDELTA: an expiration
// up to 30 days is seconds from now, anything larger is a Unix time.
const maxRelativeExpiration = 30 * 24 * 60 * 60

// expiration converts an entry's absolute expiry into memcached's
// expiration field, as seen at now. live is false when the entry has
// already expired and should not be stored at all.
//
// The remaining time is rounded up to whole seconds, because 0 would mean
// "never expires" to memcached, plus one: memcached reads its own clock
// once a second, so an item given n seconds may be dropped as early as
// n-1 seconds after it was stored. Without the extra second a value would
// vanish from memcached up to a second before its expiry, under early
// refresh (which reloads it shortly before then) and under leases (whose
// waiters would see a miss, not the fill). The envelope's own expiry,
// which the chain checks on every read, still decides when the value is
// stale. Past 30 days memcached only takes an
// absolute Unix time, which it compares with its own clock; one that does
// not fit the 32-bit field (after January 2038) becomes 0, so memcached
// keeps the item until it is evicted and the envelope's own expiry, which
// the chain checks on every read, still bounds it.
func expiration(now, expires time.Time) (exp int32, live bool) {
	if expires.IsZero() {
		return 0, true
	}
	remaining := expires.Sub(now)
	if remaining <= 0 {
		return 0, false
	}
	secs := remaining/time.Second + 1
	if remaining%time.Second != 0 {
		secs++
	}
	if secs <= maxRelativeExpiration {
		return int32(secs), true
	}
	abs := expires.Unix() + 1
	if expires.Nanosecond() != 0 {
		abs++
	}
	if abs > math.MaxInt32 {
		return 0, true
	}
	return int32(abs), true
}
