package serve

import (
	"encoding/binary"
	"fmt"
)

// A plain-cache item is stored in a tier as the value of a tier.Entry (the
// entry carries the expiry):
//
//	byte 0     item format version (1)
//	4 bytes    client flags, big-endian
//	8 bytes    CAS token, big-endian, never 0
//	rest       the client's value
//
// Keeping the flags and the CAS inside the value is what lets every
// tier.Tier, which stores bytes and an expiry only, hold a memcached item.
const (
	itemVersion    = 1
	itemHeaderSize = 1 + 4 + 8
)

// encodeItem returns the stored form of it with the CAS token cas.
func encodeItem(it Item, cas uint64) []byte {
	b := make([]byte, itemHeaderSize, itemHeaderSize+len(it.Value))
	b[0] = itemVersion
	binary.BigEndian.PutUint32(b[1:5], it.Flags)
	binary.BigEndian.PutUint64(b[5:13], cas)
	return append(b, it.Value...)
}

// decodeItem parses a stored item. Its Value aliases b.
func decodeItem(b []byte) (Item, error) {
	if len(b) < itemHeaderSize || b[0] != itemVersion {
		return Item{}, fmt.Errorf("%w: %d bytes", ErrBadItem, len(b))
	}
	it := Item{
		Flags: binary.BigEndian.Uint32(b[1:5]),
		CAS:   binary.BigEndian.Uint64(b[5:13]),
		Value: b[itemHeaderSize:],
	}
	if it.CAS == 0 {
		return Item{}, fmt.Errorf("%w: CAS 0", ErrBadItem)
	}
	return it, nil
}
