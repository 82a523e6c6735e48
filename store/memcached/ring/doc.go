// Package ring places keys on memcached nodes exactly as twemproxy 0.5
// (nutcracker) does, so that a Go service sharing a fleet with the proxy,
// or with PHP's memcached extension, reads and writes every key on the node
// the others use.
//
// # Basics
//
// New takes the nodes and a Config naming the placement as a nutcracker.yml
// pool does (hash, distribution, hash_tag); Locate answers which node holds
// a key, as an index into the nodes given to New; NewSelector wraps a Ring
// as a gomemcache ServerSelector. A Ring is immutable and safe for
// concurrent use: when nodes come, go or are ejected, build a new one.
// Locate does not allocate.
//
// The key hashes are twemproxy's twelve: one_at_a_time, md5, crc16, crc32,
// crc32a, fnv1_64, fnv1a_64, fnv1_32, fnv1a_32, hsieh, murmur and jenkins,
// each with twemproxy's quirks: bytes from 0x80 up enter several of them as
// signed C chars, its fnv1a_64 is a 32-bit computation, its crc32 keeps 15
// bits and its crc16 keeps the bits above 16.
//
// The distributions:
//
//   - ketama (the default): a consistent ring of 160 points per node,
//     scaled by weight. Adding a node to N moves about 1/(N+1) of the keys,
//     all to the new node; removing one moves only its own.
//   - modula: the hash modulo the total weight, each node owning Weight
//     consecutive slots in twemproxy's order (by placement name). A change
//     of membership moves most keys.
//   - random: a node drawn at random for every request, weights ignored, as
//     twemproxy does. Reads of a key scatter over the nodes, so most miss;
//     it suits only a pool whose every node holds every key.
//   - libmemcached_ketama: libmemcached's weighted ketama, see below.
//
// A node is known by its placement name (see PlacementName): its Name when
// it has one, otherwise its address, without the port when that is 11211.
// twemproxy hashes "<placement name>-<i>" for the ketama points, and sorts
// a pool by placement name, which decides modula's slots.
//
// With a hash tag such as "{}", only what is between the first "{" and the
// first "}" after it is hashed, when that is not empty: "user:{42}:name"
// and "user:{42}:mail" share a node. A key without an opening byte, without
// a closing one after it, or with nothing between them is hashed whole.
//
// # libmemcached and PHP
//
// PHP's memcached extension with Memcached::OPT_LIBKETAMA_COMPATIBLE uses
// libmemcached's weighted ketama with md5 as the key hash. It is twemproxy's
// ketama with hash md5, with three differences, which libmemcached_ketama
// reproduces:
//
//   - libmemcached has no node names: the points of a node are named by its
//     address ("host-<i>" on port 11211, "host:port-<i>" otherwise), as
//     twemproxy names unnamed nodes, and Node.Name is ignored;
//   - an IPv6 host is written without brackets ("::1:11212-0", where
//     twemproxy would hash "[::1]:11212-0");
//   - two points with the same value (rare: about one ring of four nodes in
//     20,000 has such a pair) are ordered by the order the servers were
//     added, not by name.
//
// So for unnamed IPv4 or hostname nodes, libmemcached_ketama and ketama
// with hash md5 place every key alike (TestMatchesTwemproxy checks it
// against nutcracker); libmemcached_ketama is itself checked against PHP
// memcached 3.2.0 on libmemcached 1.1.4 (TestLibmemcachedKetama). Its key
// hash defaults to md5; a PHP client that sets Memcached::OPT_HASH after
// OPT_LIBKETAMA_COMPATIBLE changes only the key hash, which Config.Hash
// then names (libmemcached's one_at_a_time, crc, fnv and murmur hashes
// agree with twemproxy's; Debian's libmemcached is built without hsieh).
//
// # Caveats
//
// twemproxy's crc32 is 15 bits wide: under ketama every key hashes below
// the ring's first point, and one node gets every key. That is what the
// proxy does too; prefer crc32a, md5 or the default.
//
// twemproxy's fnv1a_64 multiplies by 0x1b3 in 32 bits, which mixes the last
// bytes of a key poorly: keys that differ only in their last byte or two
// ("article:1", "article:2") tend to share a node. Over many keys the
// spread is still even.
//
// libmemcached hashes a key without the prefix set by OPT_PREFIX_KEY unless
// OPT_HASH_WITH_PREFIX_KEY is on; a selector sees the whole key it is
// given.
package ring
