package boltdb

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"

	"github.com/tiercache/tiercache/tier"
)

// A record is what the entries bucket holds for one key (format 2):
//
//	bytes 0-3  CRC-32C of the key, then of bytes 4 to the end, big endian
//	bytes 4-7  flags, big endian; always zero for now
//	bytes 8-   the tier envelope (tier.EncodeEntry)
//
// bbolt checks nothing below its meta pages, so a flipped bit in a value
// would otherwise be served as a value. The checksum covers the key too:
// damage that moves a record under another key is caught as well.
// CRC-32C is computed by the CPU (SSE4.2, ARMv8), a few GB/s, far below
// the cost of the bbolt lookup that finds the record.
//
// The flags field is there so that memcached's client flags can be kept
// for the protocol server without another format change.
const (
	recordHeader = 8
	crcSize      = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordSum is the checksum of a record for key whose bytes after the
// checksum are rest.
func recordSum(key, rest []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, rest)
}

// encodeRecord returns e's envelope framed as a record for key.
func encodeRecord(key string, e tier.Entry) []byte {
	return frameRecord([]byte(key), tier.EncodeEntry(e))
}

// frameRecord frames an envelope as a record for key: the record of
// format 2, or the upgrade of a format 1 record, which was the bare
// envelope.
func frameRecord(key, envelope []byte) []byte {
	rec := make([]byte, recordHeader+len(envelope))
	copy(rec[recordHeader:], envelope)
	binary.BigEndian.PutUint32(rec, recordSum(key, rec[crcSize:]))
	return rec
}

// checkRecord returns the envelope inside rec if rec is a well-formed
// record for key (its user form, without the disk prefix) whose checksum
// matches.
func checkRecord(key, rec []byte) ([]byte, bool) {
	if len(rec) < recordHeader {
		return nil, false
	}
	if binary.BigEndian.Uint32(rec) != recordSum(key, rec[crcSize:]) {
		return nil, false
	}
	return rec[recordHeader:], true
}

// readRecord decodes rec, stored under key, into an entry whose value is
// copied out of rec: bbolt's memory is valid only inside the transaction,
// and the overlay's must not be handed to callers who may change it. A
// record that fails its checksum returns errChecksum; one whose envelope
// does not parse, an error wrapping tier.ErrBadEnvelope.
func readRecord(key, rec []byte) (tier.Entry, error) {
	env, ok := checkRecord(key, rec)
	if !ok {
		return tier.Entry{}, errChecksum
	}
	e, err := tier.DecodeEntry(env)
	if err != nil {
		return tier.Entry{}, err
	}
	if !e.Negative {
		e.Value = bytes.Clone(e.Value)
	}
	return e, nil
}

// sound reports whether rec is a record for key whose checksum matches.
func sound(key, rec []byte) bool {
	_, ok := checkRecord(key, rec)
	return ok
}
