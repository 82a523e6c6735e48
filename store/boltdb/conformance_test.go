package boltdb_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tiercache/tiercache/store/boltdb"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// TestConformance runs the contract every tier keeps against a store on a
// file of its own per case. bbolt has no value size limit worth testing
// (2 GiB), and keeps expired entries until its GC removes them.
func TestConformance(t *testing.T) {
	t.Parallel()
	tiertest.Suite{
		New: func(t *testing.T) tier.Tier {
			s, err := boltdb.Open(filepath.Join(t.TempDir(), "cache.db"), boltdb.WithGCInterval(0), boltdb.WithNoSync(true))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Error(err)
				}
			})
			return s
		},
		Sync: func(t *testing.T, tr tier.Tier) {
			if err := tr.(*boltdb.Store).Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		},
	}.Run(t)
}
