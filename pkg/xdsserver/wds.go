package xdsserver

import (
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/sluice-mesh/sluice/pkg/workloadapi"
	"github.com/sluice-mesh/sluice/pkg/workloadapi/security"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// The workload API (xdsgen wds.go): Address and Authorization resources
// for ztunnels, served as istiod's pilot/pkg/xds/workload.go serves them:
// on delta streams, a wildcard subscription getting every resource.
// Istio's ztunnel speaks only delta ADS; a state of the world request for
// them is refused with the reason (conn.begin).

// wdsType reports whether idx is a type of the workload API.
func wdsType(idx int) bool { return idx == addrIdx || idx == authzIdx }

// wildcardType reports whether a first request without names subscribes
// every resource of the type (CDS, LDS and the workload API).
func wildcardType(idx int) bool { return idx == cdsIdx || idx == ldsIdx || wdsType(idx) }

// resourceName is a generated message's resource name: Istio's names for
// the workload API (xdsgen.AddressName, AuthorizationName), the Envoy
// type's name field otherwise.
func resourceName(msg types.Resource) string {
	switch m := msg.(type) {
	case *workloadapi.Address:
		return xdsgen.AddressName(m)
	case *security.Authorization:
		return xdsgen.AuthorizationName(m)
	}
	return cachev3.GetResourceName(msg)
}
