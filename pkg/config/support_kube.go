package config

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// allRows is the support table with the Kubernetes kinds' rows.
var allRows = append(append(append([]Feature(nil), supportTable...), kubeRows()...), ambientRows()...)

// kubeRows are the support table's rows for the Kubernetes kinds the
// registry reads (pkg/registry kube.go). Spec holds the whole object;
// every field is either read or ignored by design as data that does not
// change how Istio routes (status, scheduling, container details).
func kubeRows() []Feature {
	why := "not yet exercised by the conformance runner's cases"
	return rows(
		unclaimed(why, supported("EndpointSlice", "", "metadata.labels[kubernetes.io/service-name]", "addressType",
			"endpoints[].addresses", "endpoints[].conditions.ready", "endpoints[].targetRef", "ports[].name", "ports[].port")),
		[]Feature{
			{Kind: "EndpointSlice", Field: "addressType", Support: Rejected,
				Reason: "FQDN slices are not supported (Istio ignores them, endpointslice.go updateEndpointCacheForSlice)",
				find: func(r *Resource) []string {
					if s, ok := r.Spec.(*discoveryv1.EndpointSlice); ok && s.AddressType == discoveryv1.AddressTypeFQDN {
						return []string{"addressType"}
					}
					return nil
				}},
			ignored("EndpointSlice", "endpoints[].conditions.serving, endpoints[].conditions.terminating",
				"only ready endpoints are sent: Istio sends serving-but-terminating endpoints only to persistent-session clusters, and not-ready ones only with PILOT_SEND_UNHEALTHY_ENDPOINTS, neither of which sluice has"),
			ignored("EndpointSlice", "endpoints[].nodeName, endpoints[].zone, endpoints[].hints, endpoints[].hostname, endpoints[].deprecatedTopology, ports[].protocol, ports[].appProtocol",
				"Istio takes locality from the Pod's Node and protocol from the Service's port"),
		},
		unclaimed(why, supported("Pod", "", "metadata.labels", "metadata.labels[topology.istio.io/locality]", "metadata.labels[istio-locality]", "spec.serviceAccountName", "spec.nodeName", "spec.containers[].ports[].name",
			"spec.containers[].ports[].containerPort")),
		[]Feature{
			ignored("Pod", "status, every other spec field", "the endpoint address is the slice's; a Pod gives an endpoint its labels, identity, locality and named ports only"),
		},
		unclaimed(why, supported("Node", "", "metadata.labels[topology.kubernetes.io/region]", "metadata.labels[topology.kubernetes.io/zone]",
			"metadata.labels[topology.istio.io/subzone]", "metadata.labels[failure-domain.beta.kubernetes.io/region]",
			"metadata.labels[failure-domain.beta.kubernetes.io/zone]")),
		[]Feature{
			ignored("Node", "spec, status, other labels", "a Node gives its Pods' endpoints their locality only"),
		},
		[]Feature{
			{Kind: "Service", Field: "spec.internalTrafficPolicy", Support: Rejected,
				Reason: "Local (endpoints on the client's own node only, Istio's nodeLocal) needs the proxy's node, which sluice proxies do not know",
				find: func(r *Resource) []string {
					if s, ok := r.Spec.(*corev1.ServiceSpec); ok && s.InternalTrafficPolicy != nil && *s.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal {
						return []string{"spec.internalTrafficPolicy"}
					}
					return nil
				}},
			{Kind: "Service", Field: "spec.trafficDistribution", Support: Rejected,
				Reason: "traffic distribution (Istio's locality failover for PreferClose/PreferSameZone/PreferSameNode, model.GetTrafficDistribution) is not implemented by sluice yet",
				find: func(r *Resource) []string {
					var out []string
					if s, ok := r.Spec.(*corev1.ServiceSpec); ok && s.TrafficDistribution != nil && *s.TrafficDistribution != "" {
						out = append(out, "spec.trafficDistribution")
					}
					if _, ok := r.Annotations["networking.istio.io/traffic-distribution"]; ok && r.Kind == KindService {
						out = append(out, "metadata.annotations[networking.istio.io/traffic-distribution]")
					}
					return out
				}},
			ignored("Service", "spec.sessionAffinity, spec.sessionAffinityConfig, spec.externalTrafficPolicy, spec.healthCheckNodePort, "+
				"spec.loadBalancerIP, spec.loadBalancerSourceRanges, spec.loadBalancerClass, spec.externalIPs, spec.allocateLoadBalancerNodePorts, "+
				"spec.ipFamilies, spec.ipFamilyPolicy, spec.ports[].nodePort, spec.ports[].protocol",
				"kube-proxy and cloud load balancer settings Istio's sidecars do not apply either (ConvertService reads none of them)"),
			ignored("Service", "spec.publishNotReadyAddresses",
				"read by the EndpointSlice controller, which then marks the endpoints ready; sluice reads the slices' conditions"),
		},
		unclaimed(why, supported("Namespace", "Gateway API allowedRoutes namespace selectors match them", "metadata.labels")),
		[]Feature{
			ignored("Namespace", "spec, status", "finalizers and phase do not change what Istio routes"),
		},
	)
}

func ignored(kind, field, why string) Feature {
	return Feature{Kind: kind, Field: field, Support: IgnoredByDesign, Reason: why}
}
