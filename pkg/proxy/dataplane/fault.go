package dataplane

import (
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/sluice-mesh/sluice/pkg/proxy/filters/fault"
)

// checkFaultFilter accepts the fault HTTP filter as Istio configures it:
// empty at the listener, the faults themselves on routes (compiled by the
// router package). The request path applies a route's fault before its
// action, which is where the filter sits in Envoy's chain.
func checkFaultFilter(hf *hcm.HttpFilter) error {
	if hf.GetConfigDiscovery() != nil {
		return errConfigDiscovery
	}
	return fault.CheckListenerConfig(hf.GetTypedConfig())
}

type runtimeError string

func (e runtimeError) Error() string { return string(e) }

const errConfigDiscovery = runtimeError("config_discovery (ECDS) is not supported")
