package serve

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// FuzzConn feeds arbitrary bytes to a connection's command loop over an
// in-process plain cache and a route: whatever comes in, the loop ends at
// the end of input without panicking, and every reply is whole lines.
func FuzzConn(f *testing.F) {
	for _, seed := range []string{
		"get a b c\r\n", "set a 0 0 1\r\nx\r\nget a\r\n", "gets a\r\ncas a 0 0 1 1\r\ny\r\n",
		"mg a v f t k s c O1 q\r\nmn\r\n", "ms a 2 T10 F3 MA c\r\nhi\r\n", "md a q C5\r\n",
		"ma a N0 J5 D2 MD v\r\n", "incr a 1\r\ndecr a 1\r\ntouch a 1\r\ngat 1 a\r\ngats 1 a\r\n",
		"append a 0 0 1 noreply\r\nx\r\nprepend a 0 0 1\r\nx\r\n", "set a 0 0 3\r\nabcd\r\n",
		"stats\r\nversion\r\nverbosity 1\r\nflush_all\r\nquit\r\n", "delete a 0 noreply\r\n",
		"get route:1 route:2\r\nset route:1 0 0 1\r\n1\r\n", "ms route:1 1 F1\r\nx\r\n",
		"mg bQ== b k v\r\n", "set a 0 0 2000000\r\n", strings.Repeat("get "+strings.Repeat("k", 300), 20) + "\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		router, _ := newMemRouter(t, WithRoute("route", fuzzRoute{}))
		srv, err := New(router, WithMaxLine(2048), WithMaxValue(4096))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		var out bytes.Buffer
		c := &conn{s: srv, r: bufio.NewReaderSize(bytes.NewReader(data), 64), w: bufio.NewWriter(&out)}
		c.run()
		if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\r\n")) {
			t.Fatalf("reply does not end a line: %q", out.Bytes())
		}
	})
}

// fuzzRoute is a route Backend that refuses client flags, as a
// read-through route does.
type fuzzRoute struct{}

func (fuzzRoute) Get(_ ctxT, keys []string) (map[string]Item, error) {
	m := map[string]Item{}
	for _, k := range keys {
		if len(k)%2 == 0 {
			m[k] = Item{Value: []byte("v" + k), CAS: valueCAS([]byte(k))}
		}
	}
	return m, nil
}

func (fuzzRoute) Set(_ ctxT, key string, it Item) (uint64, error) {
	if it.Flags != 0 {
		return 0, ErrFlags
	}
	return valueCAS(it.Value), nil
}

func (fuzzRoute) Delete(ctxT, string) (bool, error) { return true, nil }

// FuzzDecodeItem checks that any stored bytes decode to an item or an
// error, and that what decodes encodes back to the same bytes.
func FuzzDecodeItem(f *testing.F) {
	f.Add(encodeItem(Item{Value: []byte("hello"), Flags: 0xffffffff}, 42))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		it, err := decodeItem(b)
		if err != nil {
			return
		}
		if again := encodeItem(it, it.CAS); !bytes.Equal(again, b) {
			t.Fatalf("decode then encode of %q gave %q", b, again)
		}
	})
}

// FuzzMetaFlags checks that the meta flag parser takes any tokens.
func FuzzMetaFlags(f *testing.F) {
	f.Add("v f t k s c O123 q T10 N5 C7 F9 MS D3 J4 b u")
	f.Add("Fabc Z t t O" + strings.Repeat("x", 40))
	f.Fuzz(func(t *testing.T, line string) {
		var toks [][]byte
		for _, tok := range strings.Fields(line) {
			toks = append(toks, []byte(tok))
		}
		fl, msg := parseMetaFlags(toks)
		if msg == "" && len(fl.opaque) > maxOpaque {
			t.Fatalf("opaque of %d bytes accepted", len(fl.opaque))
		}
	})
}
