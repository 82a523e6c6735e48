package serve

import (
	"encoding/binary"
	"io"
	"time"
)

// The binary protocol is not spoken (twemproxy does not speak it either,
// and memcached deprecates it). A client that opens with its request
// magic gets one binary response it can read, status "not supported" with
// a text saying what to use instead, and the connection is closed.
const (
	binaryRequestMagic  = 0x80
	binaryResponseMagic = 0x81
	binaryHeaderSize    = 24
	binaryNotSupported  = 0x0083
)

const binaryRefusal = "binary protocol not supported: use the text or meta protocol"

// refuseBinary answers the first binary request and lets serve close the
// connection.
func (c *conn) refuseBinary() {
	c.s.stats.binaryRefused.Add(1)
	c.s.cfg.logger.Info("serve: refused a binary protocol client", "remote", c.nc.RemoteAddr())
	c.nc.SetReadDeadline(time.Now().Add(time.Second))
	var req [binaryHeaderSize]byte
	if _, err := io.ReadFull(c.r, req[:]); err != nil {
		return
	}
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.w.Write(binaryRefusalPacket(req))
	c.w.Flush()
}

// binaryRefusalPacket is the response to the request whose header is req:
// same opcode and opaque, status not supported, the refusal as its value.
func binaryRefusalPacket(req [binaryHeaderSize]byte) []byte {
	resp := make([]byte, binaryHeaderSize, binaryHeaderSize+len(binaryRefusal))
	resp[0] = binaryResponseMagic
	resp[1] = req[1] // opcode
	binary.BigEndian.PutUint16(resp[6:8], binaryNotSupported)
	binary.BigEndian.PutUint32(resp[8:12], uint32(len(binaryRefusal)))
	copy(resp[12:16], req[12:16]) // opaque
	return append(resp, binaryRefusal...)
}
