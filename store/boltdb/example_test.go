package boltdb_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/tier"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "boltdb-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	disk, err := boltdb.Open(filepath.Join(dir, "cache.db"), boltdb.WithGCInterval(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer disk.Close()

	ctx := context.Background()
	entry := tier.Entry{Value: []byte("<h1>Hello</h1>"), Expires: time.Now().Add(24 * time.Hour)}
	if err := disk.Set(ctx, "article:42", entry); err != nil {
		log.Fatal(err)
	}
	// The write is still queued for the background writer; Get sees it
	// anyway.
	e, err := disk.Get(ctx, "article:42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", e.Value)

	_, err = disk.Get(ctx, "article:43")
	fmt.Println(errors.Is(err, tier.ErrMiss))
	// Output:
	// <h1>Hello</h1>
	// true
}
