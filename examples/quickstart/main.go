// Command quickstart tells tiercache's story against real servers: a table
// of rows in MariaDB, a cache chain memcached → bbolt → SQL in front of it, a
// stampede that costs one query, and a memcached restart that costs none.
// The story itself, chain construction included, is in internal/demo, which
// `tiercache demo` runs too.
//
// It needs a MySQL/MariaDB server (TIERCACHE_MYSQL_DSN, a DSN with the right
// to create a database) and either a memcached it may restart
// (TIERCACHE_MEMCACHED plus TIERCACHE_MEMCACHED_RESTART, a shell command that
// restarts it empty) or the memcached binary, which it then runs itself on a
// private loopback port. scripts/demo.sh sets all of this up.
package main

import (
	"context"
	"flag"
	"log"
	"os"

	"github.com/tiercache/tiercache/internal/demo"
)

func main() {
	rows := flag.Int("rows", 10000, "rows in the demo table")
	flag.Parse()
	log.SetFlags(0)
	if err := demo.Run(context.Background(), os.Stdout, demo.Options{Rows: *rows}); err != nil {
		log.Fatalf("quickstart: %v", err)
	}
}
