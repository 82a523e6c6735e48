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

// Stats returns the lines of the stats command: memcached's own names
// first, then each route's counters ("plain:hits", "article:memcached_hits"),
// then those of WithStats.
func (s *Server) Stats() []Stat {
	st := &s.stats
	now := time.Now()
	n := func(v *atomic.Int64) string { return strconv.FormatInt(v.Load(), 10) }
	out := []Stat{
		{"pid", strconv.Itoa(os.Getpid())},
		{"uptime", strconv.FormatInt(int64(now.Sub(s.start)/time.Second), 10)},
		{"time", strconv.FormatInt(now.Unix(), 10)},
		{"version", s.cfg.version},
		{"pointer_size", strconv.Itoa(32 << (^uint(0) >> 63))},
		{"threads", strconv.Itoa(runtime.GOMAXPROCS(0))},
		{"max_connections", strconv.Itoa(s.cfg.maxConns)},
		{"curr_connections", n(&st.currConns)},
		{"total_connections", n(&st.totalConns)},
		{"rejected_connections", n(&st.rejectedConns)},
		{"accept_errors", n(&st.acceptErrors)},
		{"cmd_get", n(&st.cmdGet)},
		{"cmd_set", n(&st.cmdSet)},
		{"cmd_touch", n(&st.cmdTouch)},
		{"get_hits", n(&st.getHits)},
		{"get_misses", n(&st.getMisses)},
		{"delete_misses", n(&st.deleteMisses)},
		{"delete_hits", n(&st.deleteHits)},
		{"incr_misses", n(&st.incrMisses)},
		{"incr_hits", n(&st.incrHits)},
		{"decr_misses", n(&st.decrMisses)},
		{"decr_hits", n(&st.decrHits)},
		{"cas_misses", n(&st.casMisses)},
		{"cas_hits", n(&st.casHits)},
		{"cas_badval", n(&st.casBadval)},
		{"touch_hits", n(&st.touchHits)},
		{"touch_misses", n(&st.touchMisses)},
		{"protocol_errors", n(&st.protocolErrors)},
		{"backend_errors", n(&st.backendErrors)},
		{"too_large", n(&st.tooLarge)},
		{"binary_refused", n(&st.binaryRefused)},
		{"panics", n(&st.panics)},
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
