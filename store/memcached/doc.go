// Package memcached is the memcached tier of a tiercache chain: the fast,
// shared, forgetful level in front of the durable store and the database.
//
// It is built on github.com/bradfitz/gomemcache and adds what a cache tier
// needs beyond a client: any byte string works as a key, entries carry
// their absolute expiry, values too large for memcached are refused without
// leaving an older value behind, and every failure to reach a node reads as
// a miss to the chain instead of an error to the caller.
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
// that must not overwrite newer data), tier.MultiGetter (one multi-get per
// node) and tier.Counter.
//
// Values are stored as tier.EncodeEntry envelopes. The memcached
// expiration is the time the entry has left, rounded up to whole seconds,
// or an absolute Unix time past memcached's 30-day limit for relative
// times; an entry that has already expired is not stored.
//
// # Leases
//
// A *Tier is also a tier.Leaser, for tier.WithLeases: on memcached's meta
// protocol, over connections of its own, it grants one lease per key among
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
// fails WithFailureLimit operations in a row is marked down: operations on
// its keys return ErrNodeDown (an ErrUnavailable) at once, without touching
// the network, until a background probe after WithRetryTimeout finds it
// answering. Before it takes traffic again the node deletes the keys whose
// Set or Delete it missed. WithAutoEject moves a down node's keys to the
// other nodes instead, with their TTL capped (WithEjectedTTLCap).
//
// WithDiscovery follows an ElastiCache cluster through its configuration
// endpoint; the membership is an immutable snapshot swapped atomically, and
// an operation works with one snapshot throughout. See docs/cluster.md.
//
// # Caveats
//
// gomemcache takes no context. The context is checked before any I/O; after
// that, a call is bounded by the timeout (WithTimeout), which applies to
// each network step: the dial when no idle connection is free, the write,
// and each read. A Get on a hung node therefore takes up to about twice the
// timeout, and a GetMulti whose node trickles items one by one can take
// longer.
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
