package memory_test

import (
	"testing"

	"github.com/tiercache/tiercache/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
