package serve

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// casToken finds the CAS of a gets reply.
var casToken = regexp.MustCompile(`VALUE \S+ \d+ \d+ (\d+)\r\n`)

func TestTextCommands(t *testing.T) {
	t.Parallel()
	router, _ := newMemRouter(t)
	_, addr := startServer(t, router)
	c := dial(t, addr)
	long := strings.Repeat("k", 251)
	for _, step := range []struct{ name, req, want string }{
		{"set", "set a 0 0 5\r\nhello\r\n", lines("STORED")},
		{"get hit", "get a\r\n", lines("VALUE a 0 5", "hello", "END")},
		{"get miss", "get nope\r\n", lines("END")},
		{"get many, in order, twice", "get nope a a\r\n", lines("VALUE a 0 5", "hello", "VALUE a 0 5", "hello", "END")},
		{"all 32 flag bits", "set f 4294967295 0 1\r\nx\r\nget f\r\n", lines("STORED", "VALUE f 4294967295 1", "x", "END")},
		{"flags over 32 bits", "set f 4294967296 0 1\r\n", lines("CLIENT_ERROR bad command line format")},
		{"empty value", "set e 7 0 0\r\n\r\nget e\r\n", lines("STORED", "VALUE e 7 0", "", "END")},
		{"binary value", "set b 0 0 4\r\n\r\n\x00\xff\r\nget b\r\n", "STORED\r\nVALUE b 0 4\r\n\r\n\x00\xff\r\nEND\r\n"},
		{"add present", "add a 0 0 1\r\nx\r\n", lines("NOT_STORED")},
		{"add absent", "add n 0 0 1\r\nx\r\n", lines("STORED")},
		{"replace absent", "replace zz 0 0 1\r\nx\r\n", lines("NOT_STORED")},
		{"replace present", "replace n 3 0 1\r\ny\r\nget n\r\n", lines("STORED", "VALUE n 3 1", "y", "END")},
		{"append", "append n 9 0 2\r\nzz\r\nget n\r\n", lines("STORED", "VALUE n 3 3", "yzz", "END")},
		{"prepend", "prepend n 0 0 1\r\nx\r\nget n\r\n", lines("STORED", "VALUE n 3 4", "xyzz", "END")},
		{"append absent", "append zz 0 0 1\r\nx\r\n", lines("NOT_STORED")},
		{"delete", "delete n\r\nget n\r\n", lines("DELETED", "END")},
		{"delete absent", "delete n\r\n", lines("NOT_FOUND")},
		{"delete legacy 0", "delete n 0\r\n", lines("NOT_FOUND")},
		{"delete with time", "delete n 5\r\n", lines("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]")},
		{"incr", "set i 0 0 1\r\n5\r\nincr i 10\r\ndecr i 100\r\nincr i 18446744073709551615\r\nincr i 1\r\n",
			lines("STORED", "15", "0", "18446744073709551615", "0")},
		{"incr absent", "incr zz 1\r\n", lines("NOT_FOUND")},
		{"incr non-numeric", "incr a 1\r\n", lines("CLIENT_ERROR cannot increment or decrement non-numeric value")},
		{"incr bad delta", "incr i x\r\n", lines("CLIENT_ERROR invalid numeric delta argument")},
		{"touch", "touch a 100\r\ntouch zz 100\r\n", lines("TOUCHED", "NOT_FOUND")},
		{"touch without exptime", "touch a\r\n", lines("ERROR")},
		{"gat", "gat 100 a zz\r\n", lines("VALUE a 0 5", "hello", "END")},
		{"gat without keys", "gat 10\r\n", lines("END")},
		{"gat bad exptime", "gat a\r\n", lines("CLIENT_ERROR invalid exptime argument")},
		{"expired by negative exptime", "set x 0 -1 1\r\nx\r\nget x\r\n", lines("STORED", "END")},
		{"noreply", "set q 0 0 1 noreply\r\nq\r\nadd q 0 0 1 noreply\r\nq\r\ndelete zz noreply\r\nincr zz 1 noreply\r\nget q\r\n",
			lines("VALUE q 0 1", "q", "END")},
		{"version", "version\r\n", lines("VERSION " + DefaultVersion)},
		{"verbosity", "verbosity 1\r\nverbosity 1 noreply\r\n", lines("OK")},
		{"verbosity without level", "verbosity\r\n", lines("ERROR")},
		{"unknown command", "bogus a b\r\n", lines("ERROR")},
		{"upper case", "GET a\r\n", lines("ERROR")},
		{"empty line", "\r\n", lines("ERROR")},
		{"get without key", "get\r\n", lines("ERROR")},
		{"251-byte key", "get " + long + "\r\n", lines("CLIENT_ERROR bad command line format")},
		{"251-byte key in set", "set " + long + " 0 0 1\r\nx\r\n", lines("CLIENT_ERROR bad command line format", "ERROR")},
		{"bad length", "set a 0 0 abc\r\n", lines("CLIENT_ERROR bad command line format")},
		{"negative length", "set a 0 0 -1\r\n", lines("CLIENT_ERROR bad command line format")},
		{"bad data chunk", "set a 0 0 3\r\nabcd\r\nget a\r\n", lines("CLIENT_ERROR bad data chunk", "ERROR", "VALUE a 0 5", "hello", "END")},
		{"cas without token", "cas c 0 0 1\r\nx\r\n", lines("ERROR", "ERROR")},
		{"cas absent", "cas zz 0 0 1 5\r\nx\r\n", lines("NOT_FOUND")},
		{"stats subcommand", "stats items\r\n", lines("ERROR")},
		{"flush_all refused", "flush_all\r\n", lines("SERVER_ERROR flush_all is not supported by this server")},
		{"bare newlines", "get a\n", lines("VALUE a 0 5", "hello", "END")},
	} {
		if got := c.roundTrip(step.req); got != step.want {
			t.Errorf("%s: %q\n got %q\nwant %q", step.name, step.req, got, step.want)
		}
	}
}

func TestCAS(t *testing.T) {
	t.Parallel()
	router, _ := newMemRouter(t)
	_, addr := startServer(t, router)
	c := dial(t, addr)
	c.roundTrip("set k 1 0 1\r\na\r\n")
	m := casToken.FindStringSubmatch(c.roundTrip("gets k\r\n"))
	if m == nil {
		t.Fatal("gets: no CAS token")
	}
	if got := c.roundTrip("cas k 2 0 1 " + m[1] + "\r\nb\r\n"); got != lines("STORED") {
		t.Fatalf("cas with the current token: %q", got)
	}
	if got := c.roundTrip("cas k 2 0 1 " + m[1] + "\r\nc\r\n"); got != lines("EXISTS") {
		t.Fatalf("cas with an old token: %q", got)
	}
	if got := c.roundTrip("get k\r\n"); got != lines("VALUE k 2 1", "b", "END") {
		t.Fatalf("after cas: %q", got)
	}
	m2 := casToken.FindStringSubmatch(c.roundTrip("gats 100 k\r\n"))
	if m2 == nil || m2[1] == m[1] {
		t.Fatalf("gats after a cas: token %v, the old one was %s", m2, m[1])
	}
}

func TestMetaCommands(t *testing.T) {
	t.Parallel()
	router, _ := newMemRouter(t)
	_, addr := startServer(t, router)
	c := dial(t, addr)
	long := strings.Repeat("k", 251)
	for _, step := range []struct{ name, req, want string }{
		{"ms", "ms m 2 F5 T0\r\nhi\r\n", lines("HD")},
		{"mg value flags opaque key", "mg m v f O123 k\r\n", lines("VA 2 f5 O123 km", "hi")},
		{"mg no flags", "mg m\r\n", lines("HD")},
		{"mg size ttl", "mg m s t\r\n", lines("HD s2 t-1")},
		{"mg miss", "mg nope v\r\n", lines("EN")},
		{"mg miss returns O and k", "mg nope v O9 k\r\n", lines("EN O9 knope")},
		{"mg miss quiet", "mg nope v q\r\n", ""},
		{"mg hit quiet", "mg m v q\r\n", lines("VA 2", "hi")},
		{"mg touch", "mg m T100 t\r\n", lines("HD t100")},
		{"mg base64 key", "mg bQ== b v k\r\n", lines("VA 2 km", "hi")},
		{"ms base64 key", "ms AAE= 2 b\r\nhi\r\nmg AAE= b k v\r\n", lines("HD", "VA 2 kAAE= b", "hi")},
		{"mg invalid flag", "mg m Z\r\n", lines("CLIENT_ERROR invalid flag")},
		{"mg duplicate flag", "mg m v t t\r\n", lines("CLIENT_ERROR duplicate flag")},
		{"mg long opaque", "mg m O" + strings.Repeat("1", 33) + "\r\n", lines("CLIENT_ERROR opaque token too long")},
		{"mg 251-byte key", "mg " + long + " v\r\n", lines("CLIENT_ERROR bad command line format")},
		{"mg without key", "mg\r\n", lines("ERROR")},
		{"ms quiet", "ms q 1 q\r\nx\r\n", ""},
		{"ms add present", "ms q 1 ME\r\ny\r\n", lines("NS")},
		{"ms add present quiet", "ms q 1 ME q\r\ny\r\n", lines("NS")},
		{"ms append", "ms q 1 MA\r\nz\r\nmg q v\r\n", lines("HD", "VA 2", "xz")},
		{"ms replace absent", "ms zz 1 MR\r\nz\r\n", lines("NS")},
		{"ms compare absent", "ms zz 1 C1\r\nz\r\n", lines("NF")},
		{"ms compare mismatch", "ms q 1 C1\r\nz\r\n", lines("EX")},
		{"ms invalid mode swallows", "ms q 2 MZ\r\nhi\r\n", lines("CLIENT_ERROR invalid mode for ms M token")},
		{"ms bad flags swallow", "ms q 1 Fabc\r\nz\r\n", lines("CLIENT_ERROR bad command line format")},
		{"ms bad length", "ms q abc\r\nz\r\n", lines("CLIENT_ERROR bad command line format", "ERROR")},
		{"ms without length", "ms q\r\n", lines("CLIENT_ERROR bad command line format")},
		{"md", "md q\r\nmd q\r\n", lines("HD", "NF")},
		{"md quiet", "ms q 1\r\nx\r\nmd q q\r\nmd q q\r\n", lines("HD", "NF")},
		{"ma", "ms n 1\r\n5\r\nma n\r\nma n v\r\nma n MD D10 v\r\n", lines("HD", "HD", "VA 1", "7", "VA 1", "0")},
		{"ma absent", "ma zz\r\nma zz q\r\n", lines("NF", "NF")},
		{"ma vivify", "ma v N0 J10 v t\r\nma v v\r\n", lines("VA 2 t-1", "10", "VA 2", "11")},
		{"ma non-numeric", "ma m\r\n", lines("CLIENT_ERROR cannot increment or decrement non-numeric value")},
		{"ma invalid mode", "ma n MX\r\n", lines("CLIENT_ERROR invalid mode for ma M token")},
	} {
		if got := c.roundTrip(step.req); got != step.want {
			t.Errorf("%s: %q\n got %q\nwant %q", step.name, step.req, got, step.want)
		}
	}
	// The CAS mg returns is the one ms C compares with.
	reply := c.roundTrip("ms c 1 c\r\na\r\n")
	var cas uint64
	if _, err := fmt.Sscanf(reply, "HD c%d\r\n", &cas); err != nil {
		t.Fatalf("ms c: %q: %v", reply, err)
	}
	if got := c.roundTrip(fmt.Sprintf("ms c 1 C%d\r\nb\r\nmg c v\r\n", cas)); got != lines("HD", "VA 1", "b") {
		t.Fatalf("ms C with the token ms returned: %q", got)
	}
}

func TestPipelineAnsweredInOrder(t *testing.T) {
	t.Parallel()
	router, _ := newMemRouter(t)
	_, addr := startServer(t, router)
	c := dial(t, addr)
	const n = 2000
	var req, want strings.Builder
	for i := range n {
		fmt.Fprintf(&req, "set k%d %d 0 %d\r\n%d\r\nget k%d\r\n", i, i, len(fmt.Sprint(i)), i, i)
		fmt.Fprintf(&want, "STORED\r\nVALUE k%d %d %d\r\n%d\r\nEND\r\n", i, i, len(fmt.Sprint(i)), i)
	}
	// One write of every request: the server reads them in whatever
	// pieces the kernel hands over.
	req.WriteString("mn\r\n")
	go c.send(req.String())
	got, w := c.readToMN(), want.String()
	if got != w {
		i := 0
		for i < len(got) && i < len(w) && got[i] == w[i] {
			i++
		}
		t.Fatalf("pipelined replies differ at byte %d of %d:\n got %.100q\nwant %.100q", i, len(w), got[i:], w[i:])
	}
}

func TestBinaryProtocolRefused(t *testing.T) {
	t.Parallel()
	router, _ := newMemRouter(t)
	srv, addr := startServer(t, router)
	c := dial(t, addr)
	var req [binaryHeaderSize]byte
	req[0] = binaryRequestMagic
	req[1] = 0x00 // get
	copy(req[12:16], "opq!")
	c.send(string(req[:]))
	reply := c.readToClose()
	if len(reply) < binaryHeaderSize {
		t.Fatalf("binary reply %q: shorter than a header", reply)
	}
	if reply[0] != binaryResponseMagic || binary.BigEndian.Uint16([]byte(reply[6:8])) != binaryNotSupported ||
		reply[12:16] != "opq!" || !strings.Contains(reply[binaryHeaderSize:], "not supported") {
		t.Fatalf("binary reply %q: want magic 0x81, status 0x83, the opaque back, and a text", reply)
	}
	if got := statValue(srv, "binary_refused"); got != "1" {
		t.Fatalf("binary_refused %s, want 1", got)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	router, _ := newMemRouter(t)
	srv, addr := startServer(t, router, WithMaxLine(1024), WithMaxValue(10), WithMaxConns(2))
	c := dial(t, addr)
	if got := c.roundTrip("set big 0 0 11\r\n01234567890\r\nget big\r\n"); got != lines("SERVER_ERROR object too large for cache", "END") {
		t.Errorf("value over the limit: %q", got)
	}
	if got := c.roundTrip("ms big 11\r\n01234567890\r\n"); got != lines("SERVER_ERROR object too large for cache") {
		t.Errorf("ms value over the limit: %q", got)
	}
	c2 := dial(t, addr)
	c2.roundTrip("version\r\n")
	c3 := dial(t, addr)
	if got := c3.readToClose(); got != "SERVER_ERROR Too many open connections\r\n" {
		t.Errorf("connection over the limit: %q", got)
	}
	c2.nc.Close()
	c.send("get " + strings.Repeat("k ", 600) + "\r\n")
	if got := c.readToClose(); got != "CLIENT_ERROR line too long\r\n" {
		t.Errorf("line over the limit: %q", got)
	}
	if got := statValue(srv, "rejected_connections"); got != "1" {
		t.Errorf("rejected_connections %s, want 1", got)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	router, _ := newMemRouter(t)
	_, addr := startServer(t, router, WithIdleTimeout(50e6))
	c := dial(t, addr)
	c.roundTrip("version\r\n")
	if got := c.readToClose(); got != "" {
		t.Fatalf("idle connection: got %q before the close", got)
	}
}

func TestQuit(t *testing.T) {
	t.Parallel()
	router, _ := newMemRouter(t)
	_, addr := startServer(t, router)
	c := dial(t, addr)
	c.send("version\r\nquit\r\nversion\r\n")
	if got := c.readToClose(); got != lines("VERSION "+DefaultVersion) {
		t.Fatalf("quit: %q", got)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	router, _ := newMemRouter(t)
	_, addr := startServer(t, router)
	c := dial(t, addr)
	c.roundTrip("set a 0 0 1\r\nx\r\nget a b\r\n")
	got := c.roundTrip("stats\r\n")
	for _, want := range []string{"STAT cmd_get 2\r\n", "STAT get_hits 1\r\n", "STAT get_misses 1\r\n",
		"STAT cmd_set 1\r\n", "STAT curr_connections 1\r\n", "STAT plain:hits 1\r\n", "END\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("stats lack %q:\n%s", want, got)
		}
	}
}

// statValue is one line of the server's stats.
func statValue(srv *Server, name string) string {
	for _, st := range srv.Stats() {
		if st.Name == name {
			return st.Value
		}
	}
	return ""
}
