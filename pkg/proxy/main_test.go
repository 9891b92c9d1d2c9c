package proxy_test

import (
	"os"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestMain removes the sluice binary testenv builds for TestSidecarRSS.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
