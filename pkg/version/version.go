// Package version is sluice's version string: what a proxy announces to
// the control plane as its ISTIO_VERSION node metadata (istiod's
// pilot_xds{version} label reads it) and what the binary reports.
package version

import (
	"runtime/debug"
	"sync"
)

// Version is set at link time for a release
// (-ldflags "-X github.com/sluice-mesh/sluice/pkg/version.Version=1.2.3").
var Version string

var (
	once     sync.Once
	resolved string
)

// Get is Version when set, else the main module's version from the
// build info (a tagged `go install`), else "dev" with the VCS revision
// the binary was built from when Go recorded one ("dev+0123456789ab",
// "dev+0123456789ab.dirty").
func Get() string {
	once.Do(func() { resolved = resolve(Version, readBuildInfo()) })
	return resolved
}

func readBuildInfo() *debug.BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return bi
}

func resolve(linked string, bi *debug.BuildInfo) string {
	if linked != "" {
		return linked
	}
	if bi == nil {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ".dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return "dev"
	}
	return "dev+" + rev + dirty
}
