package memcached

import (
	"fmt"

	mcwire "github.com/tiercache/tiercache/store/memcached/internal/wire"
)

// Quiet meta batches.
//
// Bulk adds (pipeline.go) and bulk fills (fillmulti.go) write many quiet
// meta commands in one request, each tagged with its index as opaque
// (O<i>), and close it with mn:
//
//	ms <key> <len> ... q O0\r\n<value>\r\n
//	ms <key> <len> ... q O1\r\n<value>\r\n
//	mn\r\n
//
// A quiet command that succeeds says nothing; one that fails answers with
// its code and opaque; MN comes once every command before it has run. So
// a command with no reply before MN succeeded. memcached ties most replies
// to their command, but not "SERVER_ERROR out of memory", which carries no
// opaque: it is blamed on every command it could belong to, those after
// the last reply tied to a command and before the next.

// readQuietBatch reads the replies of a batch of size quiet commands, up
// to MN. outcome is called for every reply tied to a command, and for
// every command a SERVER_ERROR is blamed on. On a failure it returns, in
// settled, the last command whose fate is known (-1 for none): a command
// up to it that got no outcome succeeded, those after it are unknown.
func readQuietBatch(r *mcwire.Reader, size int, outcome func(i int, rep mcwire.Reply)) (settled int, err error) {
	settled = -1
	var unowned []mcwire.Reply
	blame := func(end int) {
		for _, rep := range unowned {
			for i := settled + 1; i < end; i++ {
				outcome(i, rep)
			}
		}
		unowned = unowned[:0]
	}
	for {
		rep, err := r.Next()
		if err != nil {
			return settled, err
		}
		switch rep.Code {
		case "MN":
			blame(size)
			return size - 1, nil
		case "SERVER_ERROR":
			unowned = append(unowned, rep)
		case "NS", "EX", "NF", "HD":
			i := rep.Opaque
			if i <= settled || i >= size {
				return settled, fmt.Errorf("%w: %s tagged %d in a batch of %d", mcwire.ErrProtocol, rep.Code, i, size)
			}
			blame(i)
			outcome(i, rep)
			settled = i
		default:
			// CLIENT_ERROR or ERROR: the server no longer reads our stream
			// as we wrote it. Nothing after this can be trusted.
			return settled, fmt.Errorf("%w: %s %s in a batch", mcwire.ErrProtocol, rep.Code, rep.Msg)
		}
	}
}
