package config

import (
	"errors"
	"fmt"

	networking "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Warnings reports what Istio's validation accepts with a warning: the
// resource applies, but its author should know a field does not do what
// it may seem to. The file source logs each one on every load (prefix
// "config: WARNING"); they never stop a resource from applying.
func Warnings(r *Resource) Errors {
	var out Errors
	warn := func(field, msg string) {
		out = append(out, &Error{Source: r.Source, Key: r.Key(), Field: field, Err: errors.New(msg)})
	}
	if dr, ok := r.Spec.(*networking.DestinationRule); ok {
		eachTrafficPolicy(dr, func(path string, p *networking.TrafficPolicy) {
			outlierWarnings(path, p.GetOutlierDetection(), warn)
			for i, pl := range p.GetPortLevelSettings() {
				outlierWarnings(fmt.Sprintf("%s.portLevelSettings[%d]", path, i), pl.GetOutlierDetection(), warn)
			}
		})
	}
	securityWarnings(r, warn)
	telemetryWarnings(r, warn)
	if pa, ok := r.Spec.(*securityv1beta1.PeerAuthentication); ok && pa.Selector != nil && len(pa.Selector.MatchLabels) == 0 {
		// Istio's validateWorkloadSelector warns; the policy is then a
		// namespace (or mesh) level one.
		warn("spec.selector", "workload selector specified without labels: this is a namespace-level (or, in the root namespace, mesh-level) policy")
	}
	return out
}

// eachTrafficPolicy calls f with the rule's and each subset's policy.
func eachTrafficPolicy(dr *networking.DestinationRule, f func(path string, p *networking.TrafficPolicy)) {
	if dr.TrafficPolicy != nil {
		f("spec.trafficPolicy", dr.TrafficPolicy)
	}
	for i, s := range dr.Subsets {
		if s.GetTrafficPolicy() != nil {
			f(fmt.Sprintf("spec.subsets[%d].trafficPolicy", i), s.TrafficPolicy)
		}
	}
}

// outlierWarnings: the deprecated consecutiveErrors is ignored, as current
// Istio ignores it (applyOutlierDetection in istio/istio
// pilot/pkg/networking/core/cluster_traffic_policy.go has no branch for
// it) and warns about it (validateOutlierDetection in
// pkg/config/validation/agent).
func outlierWarnings(path string, od *networking.OutlierDetection, warn func(field, msg string)) {
	//nolint:staticcheck // the deprecated field is what is warned about
	if od.GetConsecutiveErrors() != 0 {
		warn(path+".outlierDetection.consecutiveErrors", "deprecated and ignored, as in Istio: use consecutive5xxErrors "+
			"or consecutiveGatewayErrors (Envoy's default of 5 consecutive 5xx applies)")
	}
}
