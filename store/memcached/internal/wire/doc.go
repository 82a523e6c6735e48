// Package wire is the memcached tier's one layer over the network: the
// connections to a node, how requests are written on them, and how every
// reply, meta or classic, is read.
//
// # Basics
//
// A Pool owns the connections to one node, at most a fixed number of
// them (twemproxy's server_connections). A request is a run of commands
// written at once and a function that reads exactly their replies. Many
// requests are pipelined on each connection: callers write theirs in turn,
// and one reader goroutine per connection reads the replies in the order
// the requests were written and hands each to its caller. So a few
// connections carry any number of concurrent callers, and a batch of
// thousands of keys is a run of bounded requests in flight together
// instead of one giant one.
//
// Callers wait for room (a slot among the requests a pool keeps in flight,
// a turn to write) with their own context. Waiting is never a failure of
// the node: only a refused or timed-out dial, a write that fails, and a
// reply that does not come within the timeout of the node's last sign of
// progress are reported to the pool's health hook.
//
// Reader is the one parser of replies: lines, meta replies with their
// flags, classic VALUE items, storage and delete replies, stats, and the
// error replies.
//
// # Caveats
//
// A request's read function runs on the connection's reader goroutine,
// possibly after its caller gave up: it must write only into memory the
// caller reads after Do returns nil.
package wire
