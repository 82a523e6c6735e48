package serve

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/store/memcached"
)

// newMemcachedRouter is a Router whose plain cache is a real memcached
// through store/memcached, as tiercache serve builds it.
func newMemcachedRouter(t *testing.T, opts ...RouterOption) (*Router, *testenv.MemcachedServer) {
	t.Helper()
	mc := testenv.Memcached(t)
	tr, err := memcached.New([]string{mc.Addr + ":1"}, memcached.WithHash("fnv1a_64"), memcached.WithDistribution("ketama"),
		memcached.WithTimeout(testenv.Timeout), memcached.WithFailureLimit(testenv.FailureLimit))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	plain, err := NewPlain(tr)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter(plain, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r, mc
}

// TestRepliesMatchMemcached sends the same lines to a real memcached and
// to the server (over another real memcached) and wants the same bytes
// back: the commands and malformed lines twemproxy answers by closing the
// connection, and the everyday ones.
func TestRepliesMatchMemcached(t *testing.T) {
	t.Parallel()
	direct := testenv.Memcached(t)
	router, _ := newMemcachedRouter(t)
	_, addr := startServer(t, router)
	mc, srv := dial(t, direct.Addr), dial(t, addr)
	long := strings.Repeat("k", 251)
	for _, req := range []string{
		"set a 0 0 5\r\nhello\r\n",
		"get a\r\n",
		"get a nope a\r\n",
		"set f 4294967295 100 1\r\nx\r\nget f\r\n",
		"add a 0 0 1\r\nx\r\nadd b 1 0 1\r\ny\r\nreplace zz 0 0 1\r\nz\r\n",
		"append a 0 0 1\r\n!\r\nprepend a 0 0 1\r\n>\r\nget a\r\n",
		"delete b\r\ndelete b\r\ndelete a 0\r\ndelete a 5\r\n",
		"set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr zz 1\r\nincr n x\r\n",
		"touch n 100\r\ntouch zz 100\r\ntouch n\r\n",
		"gat 100 n zz\r\ngat 10\r\ngat n\r\n",
		"verbosity\r\nverbosity 1\r\nverbosity 1 noreply\r\n",
		"set q 0 0 1 noreply\r\nq\r\nincr q 1 noreply\r\nget q\r\n",
		"bogus\r\n\r\nGET a\r\nget\r\n",
		"get " + long + "\r\n",
		"set " + long + " 0 0 1\r\nx\r\n",
		"mg " + long + " v\r\n",
		"set a 0 0 abc\r\n",
		"set a 0 0 -1\r\n",
		"set a 0 0 3\r\nabcd\r\n",
		"cas a 0 0 1\r\nx\r\ncas a 0 0 1 abc\r\nx\r\n",
		"ms m 2 F5 T0\r\nhi\r\nmg m v f O123 k\r\nmg m s v\r\nmg m\r\nmg nope v\r\nmg nope v q\r\nmg nope v k O1\r\n",
		"mg m Z\r\nmg m v t t\r\nmg m Fabc\r\nmg\r\n",
		"mg m v O" + strings.Repeat("1", 33) + "\r\n",
		"ms m 2 MZ\r\nhi\r\nms m 1 Fabc\r\nz\r\nms m abc\r\nz\r\nms m\r\n",
		"ms x 1 q\r\nx\r\nms x 1 q ME\r\ny\r\nms x 1 q MR\r\nx\r\nms zz 1 C1\r\nz\r\n",
		"md x q\r\nmd x\r\nmd x q\r\n",
		"ms n 1\r\n5\r\nma n\r\nma n v\r\nma n MD D100 v\r\nma zz\r\nma zz q\r\nma m\r\nma n MX\r\n",
		"ma viv N0 J10 v t\r\n",
		"delete noreply\r\nset noreply 0 0 1\r\nx\r\ndelete noreply\r\nincr noreply 1\r\ntouch noreply 1\r\nverbosity noreply\r\n",
		"mg bQ== b v k\r\n",
		"ms AAE= 2 b\r\nhi\r\nmg AAE= b v k\r\nmg AAE= b k\r\nmg AAI= b k v\r\n",
		"mg m T\r\nmg m Tx\r\nmg m O\r\nmg m F5\r\n",
		"set q 0 0 3 noreply\r\nabcd\r\nset q 0 0 abc noreply\r\nappend zz 0 0 1 noreply\r\nx\r\nincr q 1 noreply\r\n",
	} {
		want, got := mc.roundTrip(req), srv.roundTrip(req)
		if got != want {
			t.Errorf("%.80q\nmemcached %q\n   served %q", req, want, got)
		}
	}
	// stats: memcached's names for what both count.
	got := srv.roundTrip("stats\r\n")
	for _, name := range []string{"pid", "uptime", "curr_connections", "cmd_get", "get_hits", "get_misses"} {
		if !strings.Contains(got, "STAT "+name+" ") || !strings.HasSuffix(got, "END\r\n") {
			t.Errorf("stats: no %s, or no END:\n%s", name, got)
		}
	}
}

// TestPlainRoundTrip checks values and all 32 bits of flags through
// store/memcached, and that add is memcached's.
func TestPlainRoundTrip(t *testing.T) {
	t.Parallel()
	router, _ := newMemcachedRouter(t)
	_, addr := startServer(t, router)
	c := dial(t, addr)
	for _, flags := range []uint32{0, 1, 4, 0x50 | 4, 0xffff0000 | 1, 256, 768, 1792, 3, 0xffffffff} {
		key := fmt.Sprintf("flags-%d", flags)
		c.roundTrip(fmt.Sprintf("set %s %d 0 3\r\nabc\r\n", key, flags))
		want := fmt.Sprintf("VALUE %s %d 3\r\nabc\r\nEND\r\n", key, flags)
		if got := c.roundTrip("get " + key + "\r\n"); got != want {
			t.Errorf("flags %#x: got %q, want %q", flags, got, want)
		}
	}
	// A get of more keys than one multi-get carries: read in pieces, in
	// order, all there.
	var sets, get, want strings.Builder
	get.WriteString("get")
	for i := range 250 {
		fmt.Fprintf(&sets, "set many:%d %d 0 1\r\n%d\r\n", i, i, i%10)
		fmt.Fprintf(&get, " many:%d", i)
		fmt.Fprintf(&want, "VALUE many:%d %d 1\r\n%d\r\n", i, i, i%10)
	}
	c.roundTrip(sets.String())
	want.WriteString("END\r\n")
	if got := c.roundTrip(get.String() + "\r\n"); got != want.String() {
		t.Errorf("get of 250 keys: %d bytes, want %d", len(got), want.Len())
	}
	big := strings.Repeat("v", 500<<10)
	if got := c.roundTrip("set big 0 0 " + fmt.Sprint(len(big)) + "\r\n" + big + "\r\nget big\r\n"); got != "STORED\r\nVALUE big 0 "+fmt.Sprint(len(big))+"\r\n"+big+"\r\nEND\r\n" {
		t.Errorf("500 KiB value: %d bytes back", len(got))
	}
}
