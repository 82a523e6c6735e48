package serve

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// serverStats are the server's counters, named in the stats reply as
// memcached names its own.
type serverStats struct {
	currConns, totalConns, rejectedConns, acceptErrors atomic.Int64
	cmdGet, getHits, getMisses                         atomic.Int64
	cmdSet, cmdTouch, touchHits, touchMisses           atomic.Int64
	deleteHits, deleteMisses                           atomic.Int64
	incrHits, incrMisses, decrHits, decrMisses         atomic.Int64
	casHits, casMisses, casBadval                      atomic.Int64
	protocolErrors, backendErrors, tooLarge            atomic.Int64
	binaryRefused, panics                              atomic.Int64
}

func (st *serverStats) countCAS(res storeResult) {
	switch res {
	case resStored:
		st.casHits.Add(1)
	case resNotFound:
		st.casMisses.Add(1)
	case resExists:
		st.casBadval.Add(1)
	}
}

func (st *serverStats) countArith(decr, hit bool) {
	switch {
	case decr && hit:
		st.decrHits.Add(1)
	case decr:
		st.decrMisses.Add(1)
	case hit:
		st.incrHits.Add(1)
	default:
		st.incrMisses.Add(1)
	}
}

// Stat is one line of the stats reply.
type Stat struct {
	Name  string
	Value string
}

// Counters returns the server's own counters by their names in the stats
// reply (curr_connections, cmd_get, protocol_errors, ...), without the
// routes' and WithStats's: for exporting them elsewhere.
func (s *Server) Counters() map[string]int64 {
	m := map[string]int64{}
	for _, c := range s.stats.named() {
		m[c.name] = c.v.Load()
	}
	return m
}

// namedCounter is one of the server's counters and its name.
type namedCounter struct {
	name string
	v    *atomic.Int64
}

// named lists the counters in the order the stats reply gives them.
func (st *serverStats) named() []namedCounter {
	return []namedCounter{
		{"curr_connections", &st.currConns}, {"total_connections", &st.totalConns},
		{"rejected_connections", &st.rejectedConns}, {"accept_errors", &st.acceptErrors},
		{"cmd_get", &st.cmdGet}, {"cmd_set", &st.cmdSet}, {"cmd_touch", &st.cmdTouch},
		{"get_hits", &st.getHits}, {"get_misses", &st.getMisses},
		{"delete_misses", &st.deleteMisses}, {"delete_hits", &st.deleteHits},
		{"incr_misses", &st.incrMisses}, {"incr_hits", &st.incrHits},
		{"decr_misses", &st.decrMisses}, {"decr_hits", &st.decrHits},
		{"cas_misses", &st.casMisses}, {"cas_hits", &st.casHits}, {"cas_badval", &st.casBadval},
		{"touch_hits", &st.touchHits}, {"touch_misses", &st.touchMisses},
		{"protocol_errors", &st.protocolErrors}, {"backend_errors", &st.backendErrors},
		{"too_large", &st.tooLarge}, {"binary_refused", &st.binaryRefused}, {"panics", &st.panics},
	}
}

// Stats returns the lines of the stats command: memcached's own names
// first, then each route's counters ("plain:hits", "article:memcached_hits"),
// then those of WithStats.
func (s *Server) Stats() []Stat {
	now := time.Now()
	out := []Stat{
		{"pid", strconv.Itoa(os.Getpid())},
		{"uptime", strconv.FormatInt(int64(now.Sub(s.start)/time.Second), 10)},
		{"time", strconv.FormatInt(now.Unix(), 10)},
		{"version", s.cfg.version},
		{"pointer_size", strconv.Itoa(32 << (^uint(0) >> 63))},
		{"threads", strconv.Itoa(runtime.GOMAXPROCS(0))},
		{"max_connections", strconv.Itoa(s.cfg.maxConns)},
	}
	for _, c := range s.stats.named() {
		out = append(out, Stat{c.name, strconv.FormatInt(c.v.Load(), 10)})
	}
	names, backends := s.router.backends()
	for i, b := range backends {
		if c, ok := b.(Counter); ok {
			out = appendCounters(out, names[i]+":", c.Counters())
		}
	}
	if s.cfg.extraStats != nil {
		out = appendCounters(out, "", s.cfg.extraStats())
	}
	return out
}

// appendCounters appends m's counters, sorted by name, with prefix.
func appendCounters(out []Stat, prefix string, m map[string]int64) []Stat {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		out = append(out, Stat{prefix + k, strconv.FormatInt(m[k], 10)})
	}
	return out
}

// statsCmd answers "stats": the general statistics. Its sub-commands
// (items, slabs, settings...) describe memcached's memory, which this
// server does not have; they get ERROR, as memcached answers an unknown
// one.
func (c *conn) statsCmd(toks [][]byte) {
	if len(toks) > 1 {
		c.errorReply()
		return
	}
	for _, st := range c.s.Stats() {
		c.w.WriteString("STAT ")
		c.w.WriteString(st.Name)
		c.w.WriteByte(' ')
		c.w.WriteString(st.Value)
		c.w.WriteString("\r\n")
	}
	c.w.WriteString("END\r\n")
}
