package analysis

import (
	"istio.io/api/label"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/k8sgateway/workloadselector.go,
// for the policy kinds sluice reads (AuthorizationPolicy,
// RequestAuthentication; Telemetry and WasmPlugin are not read).
func init() {
	register(&Analyzer{
		Name:        "k8sgateway.SelectorAnalyzer",
		Workloads:   true,
		Description: "Check that selectors are effective for Kubernetes gateway",
		Codes:       []string{"IST0166"},
		run:         analyzeGatewayPolicySelectors,
	})
}

type selectorPolicy interface {
	GetSelector() *typev1beta1.WorkloadSelector
	GetTargetRef() *typev1beta1.PolicyTargetReference
}

// analyzeGatewayPolicySelectors reports a policy whose workload selector
// picks a Kubernetes Gateway's pod: there it takes no effect, targetRef
// must be used.
func analyzeGatewayPolicySelectors(c *Context) {
	gatewayPods := map[string][]map[string]string{}
	for _, p := range c.Objects(KindPod) {
		if _, ok := p.Labels[label.IoK8sNetworkingGatewayGatewayName.Name]; ok {
			gatewayPods[p.Namespace] = append(gatewayPods[p.Namespace], p.Labels)
		}
	}
	for _, kind := range []config.Kind{config.KindAuthorizationPolicy, config.KindRequestAuthentication} {
		for _, o := range c.Objects(kind) {
			spec, ok := o.Spec.(selectorPolicy)
			if !ok || spec.GetTargetRef() != nil || spec.GetSelector() == nil {
				continue
			}
			for _, pod := range gatewayPods[o.Namespace] {
				if containsAll(pod, spec.GetSelector().GetMatchLabels()) {
					c.report(IneffectiveSelector, o, "", pod[label.IoK8sNetworkingGatewayGatewayName.Name])
				}
			}
		}
	}
}

// containsAll reports whether every entry of sub is in m (istio pkg/maps Contains).
func containsAll(m, sub map[string]string) bool {
	for k, v := range sub {
		if mv, ok := m[k]; !ok || mv != v {
			return false
		}
	}
	return true
}
