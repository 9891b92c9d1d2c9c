package config

// LabelRevision is the label that binds an object to a control plane
// revision (istio.io/rev).
const LabelRevision = "istio.io/rev"

// InRevision says whether a control plane of revision rev ("" is the
// default, unrevisioned one) reads r, as istiod does: Istio and Gateway
// API config is filtered by its istio.io/rev label (pkg/config/model.go
// LabelsInRevision, used by crdclient and the gateway controller's
// inRevision: no label is a global object every revision reads; an empty
// rev reads every object; else the label must equal rev). Kubernetes
// kinds the registry reads (Service, EndpointSlice, Pod, Node, Namespace,
// Secret) are read by every revision: istiod's kube registry does not
// filter them (a namespace's istio.io/rev picks the revision that
// injects its Pods, not the one that discovers them).
func InRevision(r *Resource, rev string) bool {
	switch r.Kind {
	case KindService, KindEndpointSlice, KindPod, KindNode, KindNamespace, KindSecret:
		return true
	}
	v, ok := r.Labels[LabelRevision]
	return !ok || rev == "" || v == rev
}
