// Package manifests holds what `sluice install` applies: the Helm chart
// charts/sluice (the same one `helm install` takes), embedded in the
// binary. Its CRD files are copied from the istio.io/api and
// sigs.k8s.io/gateway-api modules the build pins by `go generate`
// (gen/main.go), never downloaded at run time.
package manifests

import (
	"embed"
	"io/fs"
)

//go:generate go run ./gen -out charts/sluice/files

//go:embed all:charts
var charts embed.FS

// ChartDir is the chart's folder in the repository and in Charts.
const ChartDir = "charts/sluice"

// Chart is the sluice chart's files, rooted at the chart folder.
func Chart() fs.FS {
	sub, err := fs.Sub(charts, ChartDir)
	if err != nil {
		panic(err) // the embed pattern guarantees the folder
	}
	return sub
}
