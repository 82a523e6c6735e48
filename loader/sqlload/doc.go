// Package sqlload is the source of truth of a tiercache chain: a
// tier.Loader that reads rows from MySQL or MariaDB with one query template.
//
// # Basics
//
// The template selects a key and a value for the keys of one IN (?) list:
//
//	src, err := sqlload.New(db, "SELECT id, body FROM articles WHERE id IN (?)")
//	found, err := src.Load(ctx, []string{"1", "2", "3"})
//	// SELECT id, body FROM articles WHERE id IN (?,?,?), keys as arguments
//
// Load sends one statement per call (per WithMaxBatch keys for larger
// calls); keys without a row are absent from the map. Keys are bound as
// string arguments, so any byte string is a valid key, including NUL and
// invalid UTF-8 bytes against a VARBINARY column, and the query works with
// server-side prepared statements and with interpolateParams=true alike.
//
// # Caveats
//
// The chain's keys are strings and a row only answers for the key that its
// key column spells byte for byte. An INT id column works (MySQL compares
// '42' with 42), with keys in canonical decimal form: "042" finds nothing.
// With a case-insensitive collation, "abc" does not find the row "ABC";
// use a _bin collation or VARBINARY when keys differ only by case.
//
// A NULL value is a row with an empty value, not a missing row.
//
// The Loader caches nothing and keeps no connection of its own: pool sizes
// and timeouts are those of the *sql.DB.
package sqlload
