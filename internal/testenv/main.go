package testenv

import (
	"fmt"
	"os"
	"testing"
)

// Main runs the tests, then drops the databases still open and stops the
// private MariaDB this test binary started, if any, and exits. Call it from
// TestMain in every package whose tests use MySQL:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	openDatabases.Range(func(d, _ any) bool {
		if err := d.(*Database).Close(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv:", err)
		}
		return true
	})
	if shared.admin != nil {
		shared.admin.db.Close()
	}
	if shared.server != nil {
		if err := shared.server.destroy(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv: remove private MariaDB:", err)
		}
	}
	os.Exit(code)
}
