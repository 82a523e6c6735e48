// Package memcached is the memcached tier of a tiercache chain: the fast,
// shared, forgetful level in front of the durable store and the database.
//
// It speaks memcached's text protocols over one wire layer of its own
// (internal/wire): a bounded pool of connections per node with requests
// pipelined on them, and one reader for meta and classic replies. On top
// it adds what a cache tier needs beyond a client: any byte string works as
// a key, entries carry their absolute expiry, values too large for
// memcached are refused without leaving an older value behind, and every
// failure to reach a node reads as a miss to the chain instead of an error
// to the caller. It keeps gomemcache's ServerSelector as the type of a key
// placement.
//
// # Basics
//
//	mc, err := memcached.New([]string{"10.0.0.1:11211:1", "10.0.0.2:11211:1 cache-b"},
//		memcached.WithTimeout(100*time.Millisecond))
//	...
//	defer mc.Close()
//
// Server strings are nutcracker.yml's, "host:port[:weight] [name]". A
// *Tier implements tier.Tier, tier.Adder (memcached's add, for backfill
// that must not overwrite newer data), tier.MultiGetter (multi-gets per
// node in pipelined pieces of 100 keys), tier.BulkAdder, tier.Counter and
// tier.NodeReporter.
//
// Values are stored as tier.EncodeEntry envelopes. The memcached
// expiration is the time the entry has left, rounded up to whole seconds,
// or an absolute Unix time past memcached's 30-day limit for relative
// times; an entry that has already expired is not stored.
//
// # Connections
//
// Each node has one pool of at most WithServerConnections connections
// (default 2), dialed on demand. Every request to the node goes through it:
// operations, leases, bulk adds and fills, health probes, restart checks.
// Callers write their requests in turn and a reader goroutine per
// connection reads the replies in order, so two connections carry
// thousands of concurrent callers; a caller alone on an idle connection
// reads its own reply. Waiting for room is bounded by the caller's context
// and never counts against the node. See docs/cluster.md.
//
// # Leases
//
// A *Tier is also a tier.Leaser (and a tier.MultiFiller, whose fills of
// many keys are pipelined per node), for tier.WithLeases: on memcached's
// meta protocol it grants one lease per key among
// all the processes sharing the servers (mg with N: the W and Z flags),
// fills only while the lease holds (ms with the lease's CAS), and records
// Set and Delete as invalidation markers that void the leases granted
// before and make every add of the key fail. Get reads the values such
// records carry like any envelope, and a lease in progress (the empty item
// "mg N" leaves) or a bare marker as a miss. Servers without the meta
// protocol (twemproxy, memcached before 1.6) get the same leases from
// gets, add and cas, for one more round trip per lease won; by default
// each node is asked once which it speaks (WithLeaseProtocol). See
// lease.go, leaseclassic.go and record.go, and docs/consistency.md for
// what the chain builds on them.
//
// # Keys
//
// A key memcached can carry (1 to 250 bytes with the prefix, no spaces or
// control bytes) is sent as it is. Any other key, and any key that starts
// with "~h:", is sent as "~h:" followed by the base64url SHA-256 of the key,
// so the two forms can never meet. The item of a hashed key also stores the
// key itself, and a read compares it, so even a hash collision is a miss and
// never a wrong value. Counters reports how many keys were hashed.
//
// # Errors
//
// Get returns an error wrapping tier.ErrMiss for a key memcached does not
// hold, or holds under a value this package did not write. A node that is
// down, refuses, resets, times out or answers nonsense makes the operation
// return an error wrapping ErrUnavailable; the chain counts it and goes on
// to the tier below. Set and Add return errors wrapping tier.ErrTooLarge for
// entries beyond the item size limit, and Add one wrapping
// tier.ErrNotStored when the key is present.
//
// # Clusters
//
// Every operation is routed by the Tier itself to one node, each node with
// its own connection pool, health and counters (NodeStats). A node that
// fails WithFailureLimit requests in a row, by failures of its own (refused
// or timed-out dials, replies that do not come or do not parse), is marked
// down: operations on its keys return ErrNodeDown (an ErrUnavailable) at
// once, without touching the network, until a background probe finds it
// answering: a second later, and every second while it is silent (longer,
// up to WithRetryTimeout, for a node that keeps failing as soon as it
// returns). Before it takes traffic again the node deletes the keys whose
// Set or Delete it missed, unless a newer invalidation of the key landed
// since. WithAutoEject moves a down node's keys to the
// other nodes instead, with their TTL capped (WithEjectedTTLCap).
//
// WithDiscovery follows an ElastiCache cluster through its configuration
// endpoint; the membership is an immutable snapshot swapped atomically, and
// an operation works with one snapshot throughout. See docs/cluster.md.
//
// # Caveats
//
// The context bounds the wait for room on a node's connections and for the
// reply, except for a caller alone on an idle connection, which reads its
// reply itself within the timeout (WithTimeout). The timeout applies to the
// dial, the write, and the wait for each reply counted from the node's
// last progress on the connection.
//
// Without WithHash, WithDistribution or WithHashTag keys are placed as
// gomemcache does, crc32 modulo the number of nodes in the order given, and
// weights are ignored. With any of them, keys go where twemproxy (or, with
// libmemcached_ketama, PHP's memcached extension) puts them: every hash and
// distribution, weights, node names and hash tags, as package ring
// reproduces them, checked against a running nutcracker. twemproxy's
// default, ketama, keeps most keys in place when a node comes or goes.
//
// memcached's real item limit is a little below its -I setting, because the
// key and an item header count against it; the Tier accounts for both (see
// WithMaxItemSize).
package memcached
