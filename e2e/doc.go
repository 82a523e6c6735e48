// Package e2e holds the end-to-end tests and benchmarks of the whole chain
// (memcached → bbolt → MariaDB) against real servers started through
// internal/testenv. It has no code of its own.
package e2e
