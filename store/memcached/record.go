package memcached

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	mcwire "github.com/tiercache/tiercache/store/memcached/internal/wire"
	"github.com/tiercache/tiercache/tier"
)

// Records: what leases leave in memcached besides plain envelopes.
//
// A lease on a key memcached does not hold is an empty item with flags 0
// that "mg <key> N<ttl>" vivified (a stub); it expires after the lease TTL.
// (The classic protocol, leaseclassic.go, adds a record with a lease and no
// entry instead.) Everything else the lease protocol stores is a record:
//
//	flagsRecord        a record, under a key sent as it is
//	flagsKeyedRecord   a record of a hashed key, which carries the key
//
//	byte 0        record version (1)
//	byte 1        bit 0: marker, bit 1: lease, bit 2: entry, bit 3: nonce
//	16 bytes      if marker: invalidated at, kept until (Unix µs; 0 = for ever)
//	8 bytes       if lease: lease until (Unix ms)
//	8 bytes       if nonce (only with a lease): the lease's nonce, not 0
//	uvarint|key   if hashed: the caller's key, as in flagsKeyedEnvelope
//	envelope      if entry: tier.EncodeEntry's
//
// The marker is the last invalidation of the key (Set, Delete), kept as
// long as a durable copy from before it may live in some process. A lease
// taken over an item that exists (a marker, an expired value, a value being
// refreshed) is that item rewritten with a lease until a time, through a
// CAS, so that exactly one caller gets it; the entry stays readable by Get
// meanwhile. Get reads a record that has an entry like an envelope, and a
// record without one, or a stub, as a miss.
//
// The nonce is for the classic protocol, whose add and cas do not return
// the CAS of the item they store: the winner reads the item back and
// knows it for its own by the nonce, drawn at random for each lease.
const (
	flagsRecord      uint32 = 0x7403
	flagsKeyedRecord uint32 = 0x7404

	recordVersion = 1
	recordMarker  = 1 << 0
	recordLease   = 1 << 1
	recordEntry   = 1 << 2
	recordNonce   = 1 << 3
)

// errNoEntry is an item that holds no value: a lease stub or a record
// without an entry. Get reports it as a plain miss.
var errNoEntry = fmt.Errorf("memcached: %w: the key holds a lease or an invalidation marker, no value", tier.ErrMiss)

// record is a decoded record.
type record struct {
	marker     tier.Marker
	leaseUntil time.Time // zero: no lease
	nonce      uint64    // 0: none; only with a lease
	entry      *tier.Entry
}

// isStub reports whether it is an item "mg N" vivified: empty, flags 0.
func isStub(flags uint32, value []byte) bool { return flags == 0 && len(value) == 0 }

// recordItem builds the memcached item holding rec for key.
func recordItem(key, wire string, hashed bool, rec record, expiration int32) *mcwire.Item {
	return &mcwire.Item{Key: wire, Value: encodeRecord(key, hashed, rec), Flags: recordFlags(hashed), Expiration: expiration}
}

func recordFlags(hashed bool) uint32 {
	if hashed {
		return flagsKeyedRecord
	}
	return flagsRecord
}

func encodeRecord(key string, hashed bool, rec record) []byte {
	var envelope []byte
	if rec.entry != nil {
		envelope = tier.EncodeEntry(*rec.entry)
	}
	b := make([]byte, 2, 2+16+8+8+binary.MaxVarintLen64+len(key)+len(envelope))
	b[0] = recordVersion
	if !rec.marker.At.IsZero() {
		b[1] |= recordMarker
		b = binary.BigEndian.AppendUint64(b, uint64(unixMicro(rec.marker.At)))
		b = binary.BigEndian.AppendUint64(b, uint64(unixMicro(rec.marker.Until)))
	}
	if !rec.leaseUntil.IsZero() {
		b[1] |= recordLease
		b = binary.BigEndian.AppendUint64(b, uint64(max(rec.leaseUntil.UnixMilli(), 1)))
		if rec.nonce != 0 {
			b[1] |= recordNonce
			b = binary.BigEndian.AppendUint64(b, rec.nonce)
		}
	}
	if hashed {
		b = binary.AppendUvarint(b, uint64(len(key)))
		b = append(b, key...)
	}
	if rec.entry != nil {
		b[1] |= recordEntry
		b = append(b, envelope...)
	}
	return b
}

// decodeRecord parses a record stored for key. The entry's Value aliases b.
func decodeRecord(key string, hashed bool, b []byte) (record, error) {
	var rec record
	if len(b) < 2 || b[0] != recordVersion || b[1]&^(recordMarker|recordLease|recordEntry|recordNonce) != 0 {
		return rec, fmt.Errorf("%w: not a record", tier.ErrBadEnvelope)
	}
	if b[1]&recordNonce != 0 && b[1]&recordLease == 0 {
		return rec, fmt.Errorf("%w: nonce without a lease in record", tier.ErrBadEnvelope)
	}
	bits := b[1]
	b = b[2:]
	word := func() (int64, error) {
		if len(b) < 8 {
			return 0, fmt.Errorf("%w: record too short", tier.ErrBadEnvelope)
		}
		v := int64(binary.BigEndian.Uint64(b))
		b = b[8:]
		if v < 0 {
			return 0, fmt.Errorf("%w: negative time in record", tier.ErrBadEnvelope)
		}
		return v, nil
	}
	if bits&recordMarker != 0 {
		at, err := word()
		if err != nil {
			return rec, err
		}
		until, err := word()
		if err != nil {
			return rec, err
		}
		if at == 0 {
			return rec, fmt.Errorf("%w: marker without a time", tier.ErrBadEnvelope)
		}
		rec.marker = tier.Marker{At: time.UnixMicro(at)}
		if until != 0 {
			rec.marker.Until = time.UnixMicro(until)
		}
	}
	if bits&recordLease != 0 {
		ms, err := word()
		if err != nil {
			return rec, err
		}
		rec.leaseUntil = time.UnixMilli(max(ms, 1))
	}
	if bits&recordNonce != 0 {
		if len(b) < 8 {
			return rec, fmt.Errorf("%w: record too short", tier.ErrBadEnvelope)
		}
		rec.nonce = binary.BigEndian.Uint64(b)
		b = b[8:]
		if rec.nonce == 0 {
			return rec, fmt.Errorf("%w: zero nonce in record", tier.ErrBadEnvelope)
		}
	}
	if hashed {
		n, size := binary.Uvarint(b)
		if size <= 0 || n > uint64(len(b)-size) {
			return rec, fmt.Errorf("%w: bad key length in record", tier.ErrBadEnvelope)
		}
		if string(b[size:size+int(n)]) != key {
			return rec, errKeyMismatch
		}
		b = b[size+int(n):]
	}
	if bits&recordEntry != 0 {
		e, err := tier.DecodeEntry(b)
		if err != nil {
			return rec, err
		}
		rec.entry = &e
	} else if len(b) != 0 {
		return rec, fmt.Errorf("%w: %d stray bytes after a record", tier.ErrBadEnvelope, len(b))
	}
	return rec, nil
}

// decodeRecordEntry is decodeItem for records: the entry, or errNoEntry.
func decodeRecordEntry(key string, hashed bool, value []byte) (tier.Entry, error) {
	rec, err := decodeRecord(key, hashed, value)
	switch {
	case err != nil:
		return tier.Entry{}, err
	case rec.entry == nil:
		return tier.Entry{}, errNoEntry
	default:
		return *rec.entry, nil
	}
}

func unixMicro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixMicro(), 1)
}

// isNoEntry reports whether err is an item that holds no value.
func isNoEntry(err error) bool { return errors.Is(err, errNoEntry) }
