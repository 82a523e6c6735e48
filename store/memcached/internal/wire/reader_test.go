package wire

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReaderNext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     Reply
		err      error
	}{
		{"value", "VALUE k 7 3\r\nabc\r\n", Reply{Code: "VALUE", Key: "k", Flags: 7, Size: 3, Value: []byte("abc"), TTL: -1, Opaque: -1}, nil},
		{"value with cas", "VALUE k 0 1 42\r\nx\r\n", Reply{Code: "VALUE", Key: "k", Size: 1, CAS: 42, Value: []byte("x"), TTL: -1, Opaque: -1}, nil},
		{"meta value", "VA 2 c9 f5 t-1 W O3\r\nhi\r\n", Reply{Code: "VA", Size: 2, CAS: 9, Flags: 5, TTL: -1, Win: true, Opaque: 3, Value: []byte("hi")}, nil},
		{"meta header", "HD c12 Z O0\r\n", Reply{Code: "HD", CAS: 12, Won: true, TTL: -1, Opaque: 0, Size: -1}, nil},
		{"stat", "STAT pid 12\r\n", Reply{Code: "STAT", Key: "pid", Value: []byte("12"), TTL: -1, Opaque: -1, Size: -1}, nil},
		{"server error", "SERVER_ERROR object too large for cache\r\n", Reply{Code: "SERVER_ERROR", Msg: "object too large for cache", TTL: -1, Opaque: -1, Size: -1}, nil},
		{"version", "VERSION 1.6.18\r\n", Reply{Code: "VERSION", Msg: "1.6.18", TTL: -1, Opaque: -1, Size: -1}, nil},
		{"stored", "STORED\r\n", Reply{Code: "STORED", TTL: -1, Opaque: -1, Size: -1}, nil},
		{"garbage", "HELLO\r\n", Reply{}, ErrProtocol},
		{"no CRLF", "END\n", Reply{}, ErrProtocol},
		{"data without CRLF", "VALUE k 0 3\r\nabcde\r\n", Reply{}, ErrProtocol},
		{"bad flags", "VALUE k x 3\r\nabc\r\n", Reply{}, ErrProtocol},
		{"bad meta flag", "HD cx\r\n", Reply{}, ErrProtocol},
		{"cut short", "VALUE k 0 10\r\nabc", Reply{}, io.ErrUnexpectedEOF},
		{"empty", "", Reply{}, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := NewReader(strings.NewReader(tt.in)).Next()
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Next = %+v, %v; want %v", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Code != tt.want.Code || got.Key != tt.want.Key || string(got.Value) != string(tt.want.Value) ||
				got.Msg != tt.want.Msg || got.Flags != tt.want.Flags || got.CAS != tt.want.CAS || got.TTL != tt.want.TTL ||
				got.Win != tt.want.Win || got.Won != tt.want.Won || got.Opaque != tt.want.Opaque || got.Size != tt.want.Size {
				t.Fatalf("Next = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReplyTooLarge(t *testing.T) {
	t.Parallel()
	if !(Reply{Code: "SERVER_ERROR", Msg: "object too large for cache"}).TooLarge() {
		t.Error("object too large: not TooLarge")
	}
	if (Reply{Code: "SERVER_ERROR", Msg: "out of memory storing object"}).TooLarge() {
		t.Error("out of memory: TooLarge")
	}
}

// FuzzReaderNext feeds the reader arbitrary bytes: it must return replies
// or errors, never panic, and never hand back more data than announced.
func FuzzReaderNext(f *testing.F) {
	for _, s := range []string{"VALUE k 0 3\r\nabc\r\nEND\r\n", "VA 2 c1 O0\r\nhi\r\nMN\r\n", "HD O1\r\n", "STAT a b\r\nEND\r\n", "SERVER_ERROR x\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(strings.NewReader(string(in)))
		for range 16 {
			rep, err := r.Next()
			if err != nil {
				return
			}
			if rep.Size >= 0 && len(rep.Value) != rep.Size && rep.Code != "STAT" {
				t.Fatalf("%s announced %d bytes, returned %d", rep.Code, rep.Size, len(rep.Value))
			}
		}
	})
}
