package config

import (
	"maps"
	"slices"
	"strconv"

	security "istio.io/api/security/v1beta1"
)

// peerAuthentication follows Istio's ValidatePeerAuthentication
// (pkg/config/validation/validation.go) and the CRD's rules
// (manifests/charts/base/files/crd-all.gen.yaml): portLevelMtls needs a
// selector with labels, is not empty when present, and is keyed by ports
// 1..65535; the selector has no empty keys, no wildcards and values of at
// most 63 characters. Unknown fields and modes other than UNSET, DISABLE,
// PERMISSIVE and STRICT are rejected when the YAML is decoded.
func (v *validator) peerAuthentication(pa *security.PeerAuthentication) {
	emptySelector := len(pa.GetSelector().GetMatchLabels()) == 0
	if emptySelector && len(pa.PortLevelMtls) != 0 {
		v.errorf("spec.portLevelMtls", "mesh/namespace peer authentication cannot have port level mTLS: "+
			"portLevelMtls requires a selector with matchLabels (ports are a workload's)")
	}
	if pa.PortLevelMtls != nil && len(pa.PortLevelMtls) == 0 {
		v.errorf("spec.portLevelMtls", "port level mTLS, if defined, must have at least one element")
	}
	ports := make([]uint32, 0, len(pa.PortLevelMtls))
	for port := range pa.PortLevelMtls {
		ports = append(ports, port)
	}
	slices.Sort(ports)
	for _, port := range ports {
		f := mapKey("spec.portLevelMtls", strconv.FormatUint(uint64(port), 10))
		if port == 0 || port > 65535 {
			v.errorf(f, "port must be in range 1..65535 (it is %d)", port)
		}
		if pa.PortLevelMtls[port] == nil {
			v.errorf(f, "may not be null; give a mode (UNSET inherits the workload's)")
		}
	}
	v.workloadSelector("spec.selector", pa.Selector)
	if s := pa.Selector; s != nil {
		for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
			if val := s.MatchLabels[k]; len(val) > dns1123LabelMaxLength {
				v.errorf(mapKey("spec.selector.matchLabels", k), "label value is longer than 63 characters")
			}
		}
	}
}
