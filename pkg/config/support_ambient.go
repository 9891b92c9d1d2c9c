package config

// Waypoint labels (Istio's label.IoIstioUseWaypoint,
// IoIstioUseWaypointNamespace, IoIstioIngressUseWaypoint): in ambient
// mode they send a service's or workload's traffic through a waypoint
// proxy, where L7 policy is enforced. sluice builds no waypoints yet, so
// such traffic would go straight to the workload, around the policy the
// label asks for: the object is refused naming the label.
var waypointLabels = []string{"istio.io/use-waypoint", "istio.io/use-waypoint-namespace", "istio.io/ingress-use-waypoint"}

const waypointReason = "waypoints (ambient mode's L7 proxies) are not built by sluice yet: traffic would bypass the waypoint's policy"

// ambientRows are the support table's rows for the waypoint labels, on
// every kind istiod reads them from (pilot/pkg/serviceregistry/ambient
// waypoints.go: Namespace, Service, ServiceEntry, Pod, WorkloadEntry).
func ambientRows() []Feature {
	var out []Feature
	for _, kind := range []Kind{KindNamespace, KindService, KindServiceEntry, KindPod, KindWorkloadEntry} {
		for _, l := range waypointLabels {
			field := "metadata.labels[" + l + "]"
			out = append(out, Feature{Kind: string(kind), Field: field, Support: Rejected, Reason: waypointReason,
				find: func(r *Resource) []string {
					if _, ok := r.Labels[l]; ok && r.Kind == kind {
						return []string{field}
					}
					return nil
				}})
		}
	}
	return out
}
