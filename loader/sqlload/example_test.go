package sqlload_test

import (
	"context"
	"fmt"
	"log"

	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/loader/sqlload"
)

func Example() {
	// A throwaway database from the test environment; any *sql.DB works.
	d, err := testenv.NewDatabase()
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	db := d.DB
	if _, err := db.Exec("CREATE TABLE articles (id INT PRIMARY KEY, body TEXT)"); err != nil {
		log.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO articles VALUES (1, 'hello'), (2, 'world')"); err != nil {
		log.Fatal(err)
	}

	src, err := sqlload.New(db, "SELECT id, body FROM articles WHERE id IN (?)")
	if err != nil {
		log.Fatal(err)
	}
	// One statement: SELECT id, body FROM articles WHERE id IN (?,?,?)
	found, err := src.Load(context.Background(), []string{"1", "2", "404"})
	if err != nil {
		log.Fatal(err)
	}
	for _, id := range []string{"1", "2", "404"} {
		body, ok := found[id]
		fmt.Printf("%s: %q %v\n", id, body, ok)
	}
	fmt.Printf("%+v\n", src.Stats())
	// Output:
	// 1: "hello" true
	// 2: "world" true
	// 404: "" false
	// {Loads:1 Statements:1 Keys:3 Rows:2 Ignored:0 Errors:0 Kills:0 KillErrors:0}
}
