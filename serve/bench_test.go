package serve

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// benchmarkCommands measures the command loop alone, over the in-process
// tier: the server's own cost per command, without a network.
func benchmarkCommands(b *testing.B, setup, req string) {
	router, _ := newMemRouter(b)
	srv, err := New(router)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	run := func(in string) {
		c := &conn{s: srv, r: bufio.NewReader(strings.NewReader(in)), w: bufio.NewWriter(io.Discard)}
		c.run()
	}
	run(setup)
	in := strings.Repeat(req, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N / 100 {
		run(in)
	}
}

func BenchmarkGetHit(b *testing.B) {
	benchmarkCommands(b, "set key:000042 0 0 100\r\n"+strings.Repeat("v", 100)+"\r\n", "get key:000042\r\n")
}

func BenchmarkSet(b *testing.B) {
	benchmarkCommands(b, "", "set key:000042 0 0 100\r\n"+strings.Repeat("v", 100)+"\r\n")
}

func BenchmarkMetaGetHit(b *testing.B) {
	benchmarkCommands(b, "ms key:000042 100\r\n"+strings.Repeat("v", 100)+"\r\n", "mg key:000042 v f k\r\n")
}

func BenchmarkGetMulti100(b *testing.B) {
	var setup, keys bytes.Buffer
	for i := range 100 {
		fmt.Fprintf(&setup, "set key:%06d 0 0 100\r\n%s\r\n", i, strings.Repeat("v", 100))
		fmt.Fprintf(&keys, " key:%06d", i)
	}
	benchmarkCommands(b, setup.String(), "get"+keys.String()+"\r\n")
}
