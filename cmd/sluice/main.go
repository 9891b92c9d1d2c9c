// Command sluice is a service mesh that enforces Istio's API: control plane,
// proxy, echo backend and the tools around them, in one binary.
package main

import (
	"os"
	"path/filepath"

	"github.com/sluice-mesh/sluice/internal/cli"
	"github.com/sluice-mesh/sluice/pkg/kube/cniplugin"
)

func main() {
	// Copied into the node's CNI bin directory as sluice-cni (sluice cni
	// install), the binary is the CNI plugin the container runtime runs.
	if filepath.Base(os.Args[0]) == cniplugin.BinaryName {
		os.Exit(cniplugin.Main())
	}
	os.Exit(cli.Execute())
}
