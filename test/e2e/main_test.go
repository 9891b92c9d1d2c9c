// Package e2e runs sluice end to end on loopback: a real "sluice control",
// real "sluice proxy" sidecars and real "sluice echo" backends, each its own
// process, configured with unchanged Istio YAML. Tests check what a client
// app and the backends see.
package e2e

import (
	"os"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
