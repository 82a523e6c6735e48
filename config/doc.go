// Package config reads the YAML file that describes a tiercache chain, in
// the spirit of twemproxy's nutcracker.yml, and nutcracker.yml itself.
//
// # Basics
//
//	memory:
//	  max_bytes: 256MiB
//	  ttl: 1s
//	memcached:
//	  servers:
//	    - 10.0.0.1:11211:1 cache-a
//	    - 10.0.0.2:11211:1 cache-b
//	  hash: fnv1a_64
//	  distribution: ketama
//	  timeout: 200ms
//	  ttl: 10m
//	durable:
//	  path: /var/lib/app/cache.db
//	  ttl: 24h
//	  max_bytes: 2GiB
//	source:
//	  dsn_env: APP_MYSQL_DSN
//	  query: SELECT id, body FROM articles WHERE id IN (?)
//	negative_ttl: 30s
//
// Load reads and checks such a file. It knows nothing of the packages that
// build the chain: the root package tiercache turns a File into a running
// chain, so the core packages stay free of YAML.
//
// # Errors name the line
//
// An unknown key, a value of the wrong kind, a duration without a unit, two
// sections that exclude each other: every problem found is reported, each
// as "FILE:LINE: message", in one *Error whose Problems a program can
// inspect.
//
// # Values
//
// Durations are written with a unit ("250ms", "10m", "24h"); "0" is zero.
// Fields that nutcracker.yml writes in milliseconds (timeout,
// retry_timeout, server_retry_timeout) also accept a bare number of
// milliseconds. Sizes are a number of bytes or a number with a binary unit:
// "64KiB", "512MiB", "2GiB" (K, KB, M, MB, G and GB are the same binary
// units, as memcached reads -I).
//
// # nutcracker.yml
//
// LoadNutcracker reads a twemproxy configuration: pools keyed by name, each
// with listen, hash, distribution, hash_tag, servers and the rest. The ring
// command uses it to show where twemproxy would put keys.
package config
