package tier

import (
	"encoding/binary"
	"fmt"
	"time"
)

// The envelope is how an Entry travels as bytes through a tier that stores
// only bytes (memcached, bbolt):
//
//	byte 0      version (envelopeVersion)
//	byte 1      flags (bit 0: negative)
//	bytes 2-9   absolute expiry, Unix milliseconds, big endian; 0 = never
//	bytes 10-   the value
//
// Ten bytes per entry buy the rule that a value moved between tiers keeps
// its remaining TTL.
const (
	envelopeVersion    = 1
	envelopeHeaderSize = 10
	flagNegative       = 1 << 0
)

// EnvelopeOverhead is the number of bytes the envelope adds to a value.
const EnvelopeOverhead = envelopeHeaderSize

// EncodeEntry returns e as envelope bytes.
func EncodeEntry(e Entry) []byte {
	b := make([]byte, envelopeHeaderSize+len(e.Value))
	b[0] = envelopeVersion
	if e.Negative {
		b[1] |= flagNegative
	}
	var ms int64
	if !e.Expires.IsZero() {
		ms = e.Expires.UnixMilli()
		if ms <= 0 {
			ms = 1 // an expiry before 1970 is still an expiry, not "never"
		}
	}
	binary.BigEndian.PutUint64(b[2:], uint64(ms))
	copy(b[envelopeHeaderSize:], e.Value)
	return b
}

// DecodeEntry parses envelope bytes written by EncodeEntry. The returned
// Value aliases b.
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) < envelopeHeaderSize {
		return Entry{}, fmt.Errorf("%w: %d bytes, need at least %d", ErrBadEnvelope, len(b), envelopeHeaderSize)
	}
	if b[0] != envelopeVersion {
		return Entry{}, fmt.Errorf("%w: version %d", ErrBadEnvelope, b[0])
	}
	if b[1]&^flagNegative != 0 {
		return Entry{}, fmt.Errorf("%w: unknown flags %#x", ErrBadEnvelope, b[1])
	}
	e := Entry{Negative: b[1]&flagNegative != 0}
	ms := int64(binary.BigEndian.Uint64(b[2:]))
	if ms < 0 {
		return Entry{}, fmt.Errorf("%w: negative expiry", ErrBadEnvelope)
	}
	if ms != 0 {
		e.Expires = time.UnixMilli(ms)
	}
	if e.Negative {
		if len(b) != envelopeHeaderSize {
			return Entry{}, fmt.Errorf("%w: negative entry carries a value", ErrBadEnvelope)
		}
	} else {
		e.Value = b[envelopeHeaderSize:]
	}
	return e, nil
}
