// Package serve is a memcached-protocol server in front of tiercache
// chains: clients that speak memcached's text or meta protocol (PHP's
// memcached and memcache extensions, pymemcache, libmemcached's tools)
// read through the chain without knowing it is there.
//
// # Basics
//
// A Server answers on a net.Listener and hands every command to a Router,
// which picks the Backend of a key: a key whose prefix names a route
// ("article:42" with the route "article" and the separator ":") goes to
// that route's read-through chain (NewReadThrough over a *tier.Cache), with
// the prefix taken off; any other key is plain cache (NewPlain over
// memcached and, optionally, more tiers), stored and returned as the
// client wrote it, its 32 bits of client flags included.
//
//	router, err := serve.NewRouter(plain, serve.WithRoute("article", serve.NewReadThrough(cache)))
//	srv, err := serve.New(router)
//	go srv.Serve(ln)
//	...
//	srv.Shutdown(ctx) // stop accepting, finish the requests in flight
//
// # Caveats
//
// The binary protocol is refused: a client that sends its magic byte gets
// one binary "not supported" response and the connection is closed.
// flush_all is refused too (see docs/serve.md): the memcached pool is
// shared with other routes and other processes.
//
// Commands that read and then write a key (add without an atomic Adder,
// replace, cas, append, prepend, incr, decr, touch, gat) are made atomic
// against each other within one Server by a lock per key; two servers
// sharing a memcached pool do not see each other's locks.
package serve
