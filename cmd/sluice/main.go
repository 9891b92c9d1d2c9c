// Command sluice is a service mesh that enforces Istio's API: control plane,
// proxy, echo backend and the tools around them, in one binary.
package main

import (
	"os"

	"github.com/sluice-mesh/sluice/internal/cli"
)

func main() {
	os.Exit(cli.Execute())
}
