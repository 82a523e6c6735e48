package memcached

import (
	"fmt"

	mcwire "github.com/tiercache/tiercache/store/memcached/internal/wire"
)

// Bulk adds on the classic protocol.
//
// twemproxy (nutcracker) closes a client's connection on any meta command,
// and memcached before 1.6 has no add mode for ms. On a node that speaks
// only the classic protocol AddBulk sends, in the same batches and window
// as on the meta protocol,
//
//	add <key> <flags> <exptime> <bytes>\r\n<value>\r\n    (×batch)
//
// and reads one reply line per add, in the order sent: STORED; NOT_STORED,
// the key was present; or SERVER_ERROR, which memcached sends for an item
// too large and twemproxy for an add it could not forward (the server
// behind it is down, or timed out). Either kind of server error fails that
// entry alone, and the connection goes on. Nothing closes a batch: it is
// read when it has a line for each of its adds.
//
// There is no quiet mode to rely on. twemproxy passes "noreply" on, but
// noreply silences NOT_STORED as well as STORED, so the warmup could no
// longer tell a key stored from one present, and twemproxy drops a noreply
// command it could not forward without a word. Every add is answered
// instead, which costs the server a reply line per add, and twemproxy a
// response to match and forward per add.

// readClassicBatch reads b's replies, one line per add, and reports every
// key of b. On a read or protocol error it reports the keys not answered
// yet as failed, and returns the error; a connection lost before the
// first reply reports nothing, as for the meta protocol.
func (n *bulkNode) readClassicBatch(r *mcwire.Reader, b *bulkBatch) error {
	t, nd := n.run.t, n.node
	for i, k := range b.keys {
		// ERROR or CLIENT_ERROR (an error from readStoreReply) means the
		// server did not read the stream as it was written: nothing after
		// it can be matched to its command. So does EXISTS or NOT_FOUND,
		// which no add is answered.
		rep, err := readStoreReply(r)
		if err == nil && (rep.Code == "EXISTS" || rep.Code == "NOT_FOUND") {
			err = fmt.Errorf("%w: %s to add", mcwire.ErrProtocol, rep.Code)
		}
		if err != nil && i == 0 && mcwire.Stale(err) {
			return err
		}
		if err != nil {
			n.fail(b, i, t.nodeFail("add bulk", nd, err))
			return err
		}
		switch {
		case rep.Code == "STORED":
			n.run.done(k, nil)
		case rep.Code == "NOT_STORED":
			t.stats.notStored.Add(1)
			n.run.done(k, errNotStored)
		case rep.TooLarge():
			n.run.done(k, t.refusedTooLarge("add bulk", nd, b.its[i], rep.Msg))
		default:
			n.run.done(k, t.refused("add bulk", nd, rep))
		}
	}
	b.reported = true
	return nil
}
