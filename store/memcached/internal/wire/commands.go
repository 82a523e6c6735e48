package wire

import "strconv"

// The commands the tier writes, appended to a request's buffer.

// Item is what a storage command stores.
type Item struct {
	Key        string
	Value      []byte
	Flags      uint32
	Expiration int32
}

// AppendRetrieval appends "<cmd> <key> <key> ...\r\n" (get or gets).
func AppendRetrieval(buf []byte, cmd string, keys []string) []byte {
	buf = append(buf, cmd...)
	for _, k := range keys {
		buf = append(buf, ' ')
		buf = append(buf, k...)
	}
	return append(buf, "\r\n"...)
}

// AppendStorage appends the classic storage command cmd (set, add, cas)
// for it; cas is the cas command's CAS argument.
func AppendStorage(buf []byte, cmd string, it *Item, cas uint64) []byte {
	buf = append(buf, cmd...)
	buf = append(buf, ' ')
	buf = append(buf, it.Key...)
	buf = append(buf, ' ')
	buf = strconv.AppendUint(buf, uint64(it.Flags), 10)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, int64(it.Expiration), 10)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, int64(len(it.Value)), 10)
	if cmd == "cas" {
		buf = append(buf, ' ')
		buf = strconv.AppendUint(buf, cas, 10)
	}
	buf = append(buf, "\r\n"...)
	buf = append(buf, it.Value...)
	return append(buf, "\r\n"...)
}

// AppendDelete appends "delete <key>\r\n".
func AppendDelete(buf []byte, key string) []byte {
	buf = append(buf, "delete "...)
	buf = append(buf, key...)
	return append(buf, "\r\n"...)
}

// AppendMetaSet appends "ms <key> <len> <flags...>\r\n<value>\r\n".
func AppendMetaSet(buf []byte, key string, value []byte, flags ...string) []byte {
	buf = append(buf, "ms "...)
	buf = append(buf, key...)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, int64(len(value)), 10)
	for _, f := range flags {
		buf = append(buf, ' ')
		buf = append(buf, f...)
	}
	buf = append(buf, "\r\n"...)
	buf = append(buf, value...)
	return append(buf, "\r\n"...)
}
