package config

import discoveryv1 "k8s.io/api/discovery/v1"

// allRows is the support table with the Kubernetes kinds' rows.
var allRows = append(append([]Feature(nil), supportTable...), kubeRows()...)

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
		unclaimed(why, supported("Namespace", "Gateway API allowedRoutes namespace selectors match them", "metadata.labels")),
		[]Feature{
			ignored("Namespace", "spec, status", "finalizers and phase do not change what Istio routes"),
		},
	)
}

func ignored(kind, field, why string) Feature {
	return Feature{Kind: kind, Field: field, Support: IgnoredByDesign, Reason: why}
}
