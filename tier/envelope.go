package tier

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// The envelope is how an Entry travels as bytes through a tier that stores
// only bytes (memcached, bbolt). Version 1 carries the expiry alone:
//
//	byte 0      version (1)
//	byte 1      flags (bit 0: negative)
//	bytes 2-9   absolute expiry, Unix milliseconds, big endian; 0 = never
//	bytes 10-   the value
//
// Version 2 adds what the load that produced the value knew, for leases
// (Entry.Loaded, compared with invalidation markers) and early refresh
// (Entry.Delta):
//
//	byte 0      version (2)
//	byte 1      flags (bit 0: negative)
//	bytes 2-9   absolute expiry, Unix milliseconds, big endian; 0 = never
//	bytes 10-17 Loaded, Unix microseconds, big endian; 0 = unknown
//	bytes 18-21 Delta, microseconds, big endian (at most about 71 minutes)
//	bytes 22-   the value
//
// EncodeEntry writes version 1 for an entry with neither Loaded nor Delta,
// so a chain without leases or early refresh writes exactly what it always
// did; DecodeEntry reads both. Ten bytes per entry buy the rule that a
// value moved between tiers keeps its remaining TTL.
const (
	envelopeVersion    = 1
	envelopeHeaderSize = 10

	envelopeVersionLoad    = 2
	envelopeHeaderSizeLoad = 22

	flagNegative = 1 << 0
)

// EnvelopeOverhead is the number of bytes the envelope adds to a value
// whose Entry has neither Loaded nor Delta set.
const EnvelopeOverhead = envelopeHeaderSize

// EnvelopeLoadOverhead is the number of bytes the envelope adds to a value
// whose Entry records its load (Loaded or Delta set), as the chain's
// entries do with leases, early refresh or stale-while-revalidate on.
const EnvelopeLoadOverhead = envelopeHeaderSizeLoad

// EncodeEntry returns e as envelope bytes.
func EncodeEntry(e Entry) []byte {
	header := envelopeHeaderSize
	withLoad := !e.Loaded.IsZero() || e.Delta > 0
	if withLoad {
		header = envelopeHeaderSizeLoad
	}
	b := make([]byte, header+len(e.Value))
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
	if withLoad {
		b[0] = envelopeVersionLoad
		var us int64
		if !e.Loaded.IsZero() {
			us = max(e.Loaded.UnixMicro(), 1) // 0 means unknown
		}
		binary.BigEndian.PutUint64(b[10:], uint64(us))
		binary.BigEndian.PutUint32(b[18:], uint32(min(max(e.Delta.Microseconds(), 0), math.MaxUint32)))
	}
	copy(b[header:], e.Value)
	return b
}

// DecodeEntry parses envelope bytes written by EncodeEntry, of either
// version. The returned Value aliases b.
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) < envelopeHeaderSize {
		return Entry{}, fmt.Errorf("%w: %d bytes, need at least %d", ErrBadEnvelope, len(b), envelopeHeaderSize)
	}
	header := envelopeHeaderSize
	switch b[0] {
	case envelopeVersion:
	case envelopeVersionLoad:
		header = envelopeHeaderSizeLoad
		if len(b) < header {
			return Entry{}, fmt.Errorf("%w: %d bytes, version 2 needs at least %d", ErrBadEnvelope, len(b), header)
		}
	default:
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
	if header == envelopeHeaderSizeLoad {
		us := int64(binary.BigEndian.Uint64(b[10:]))
		if us < 0 {
			return Entry{}, fmt.Errorf("%w: negative load time", ErrBadEnvelope)
		}
		if us != 0 {
			e.Loaded = time.UnixMicro(us)
		}
		e.Delta = time.Duration(binary.BigEndian.Uint32(b[18:])) * time.Microsecond
	}
	if e.Negative {
		if len(b) != header {
			return Entry{}, fmt.Errorf("%w: negative entry carries a value", ErrBadEnvelope)
		}
	} else {
		e.Value = b[header:]
	}
	return e, nil
}
