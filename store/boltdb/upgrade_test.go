package boltdb

import (
	"context"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tiercache/tiercache/tier"
)

// writeLegacyFile makes a layout version 1 file, whose records were bare
// envelopes, holding n entries.
func writeLegacyFile(t *testing.T, path string, n int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketEntries, bucketWritten, bucketOrder, bucketMeta, bucketUsed} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketMeta).Put(metaFormat, uint64Bytes(layoutVersionLegacy)); err != nil {
			return err
		}
		l, err := openLayout(tx)
		if err != nil {
			return err
		}
		for i := range n {
			if err := l.put(diskKey(fmt.Sprint("k", i)), tier.EncodeEntry(value(fmt.Sprint("v", i)))); err != nil {
				return err
			}
		}
		return l.save()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// A version 1 file reads as it is when opened read-only, and is upgraded
// in place, every record given its checksum, by a read-write Open.
func TestLegacyFileUpgraded(t *testing.T) {
	t.Parallel()
	const n = 2*upgradeChunk + 7 // more than one upgrade transaction
	ctx := context.Background()
	path := tempPath(t)
	writeLegacyFile(t, path, n)

	ro, err := Open(path, WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	if e, err := ro.Get(ctx, "k5"); err != nil || string(e.Value) != "v5" {
		t.Errorf("read-only Get of a version 1 file = %q, %v", e.Value, err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}

	s := openAt(t, path)
	if s.legacy {
		t.Fatal("a read-write Open left the file at version 1")
	}
	var bad int
	err = s.db.View(func(tx *bolt.Tx) error {
		if v, err := formatOf(tx); err != nil || v != layoutVersion {
			t.Errorf("format after upgrade = %d, %v", v, err)
		}
		return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			if !sound(k[1:], v) {
				bad++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if bad > 0 {
		t.Errorf("%d records without a valid checksum after the upgrade", bad)
	}
	for i := range n {
		if e, err := s.Get(ctx, fmt.Sprint("k", i)); err != nil || string(e.Value) != fmt.Sprint("v", i) {
			t.Fatalf("k%d after upgrade = %q, %v", i, e.Value, err)
		}
	}
	if c := s.Counters(); c["entries"] != n || c["checksum_errors"] != 0 {
		t.Errorf("counters after upgrade: entries %d checksum_errors %d", c["entries"], c["checksum_errors"])
	}
}
