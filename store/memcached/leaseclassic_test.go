package memcached

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// reorderingServer is a memcached of one item slot per key that answers
// the first gets after each add as if it had run before the add: what a
// proxy spreading one client's commands over several server connections
// may do. For keys starting with "other", the item found afterwards is
// not the one added, as after an invalidation in between.
type reorderingServer struct {
	mu    sync.Mutex
	items map[string]string // key: "flags value"
	stale map[string]bool   // the next gets of the key shows it absent
	cas   uint64
}

func (s *reorderingServer) handle(conn net.Conn, r *bufio.Reader) {
	w := bufio.NewWriter(conn)
	readLines(r, func(line string) {
		f := strings.Fields(line)
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case len(f) == 5 && f[0] == "add":
			size, _ := strconv.Atoi(f[4])
			data := make([]byte, size+2)
			if _, err := io.ReadFull(r, data); err != nil {
				return
			}
			if _, ok := s.items[f[1]]; ok {
				w.WriteString("NOT_STORED\r\n")
				break
			}
			if strings.HasPrefix(f[1], "other") {
				data = encodeRecord(f[1], false, record{marker: tier.Marker{At: time.Now()}})
				data = append(data, "\r\n"...)
			}
			s.items[f[1]] = f[2] + " " + string(data[:len(data)-2])
			s.stale[f[1]] = true
			w.WriteString("STORED\r\n")
		case len(f) > 1 && f[0] == "gets":
			for _, k := range f[1:] {
				it, ok := s.items[k]
				if !ok || s.stale[k] {
					delete(s.stale, k)
					continue
				}
				flags, value, _ := strings.Cut(it, " ")
				s.cas++
				fmt.Fprintf(w, "VALUE %s %s %d %d\r\n%s\r\n", k, flags, len(value), 1000+s.cas, value)
			}
			w.WriteString("END\r\n")
		default:
			w.WriteString("ERROR\r\n")
		}
		w.Flush()
	})
}

// A claim stored but read back unchanged is read again, and won (or
// found taken by someone else) by what the second read finds.
func TestClassicLeaseReadBackBeforeClaim(t *testing.T) {
	t.Parallel()
	srv := &reorderingServer{items: make(map[string]string), stale: make(map[string]bool)}
	fs := startFakeServer(t, srv.handle)
	tr, err := New([]string{fs.addr}, WithLeaseProtocol(LeaseProtocolClassic))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	before := nodeStats(t, tr, fs.addr).Counters["requests"]
	ls, err := tr.Lease(context.Background(), []string{"mine", "other"}, tier.LeaseRequest{TTL: time.Second, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if l := ls["mine"]; l.State != tier.LeaseWon || l.Token <= 1000 {
		t.Errorf("lease read back late = %+v, want won with the CAS of the second read", l)
	}
	if l := ls["other"]; l.State != tier.LeaseHeld {
		t.Errorf("lease whose item changed = %+v, want held", l)
	}
	if n := nodeStats(t, tr, fs.addr).Counters["requests"] - before; n != 3 {
		t.Errorf("%d requests, want 3: gets, the claims, the second read", n)
	}
}
