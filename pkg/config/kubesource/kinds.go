package kubesource

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// watched is one kind the source follows: a group and resource, and for
// Secrets a field selector.
type watched struct {
	group, resource string
	// fieldSelector narrows the list/watch (Secrets by type).
	fieldSelector string
	// name identifies the informer in object keys and logs.
	name string
}

// kinds are what the source watches: every kind pkg/config decodes or
// reports as not enforced (support_table.go, notenforced.go), the
// Kubernetes registry kinds (Services, EndpointSlices, Pods, Nodes,
// Namespaces; pkg/registry reads them) and the Secrets a Gateway's or
// DestinationRule's credentialName can name. Those are selected as
// istiod's credentials controller selects them
// (pilot/pkg/credentials/kube/secrets.go, SecretsFieldSelector): every
// type but Helm releases and service account tokens, which can never hold
// a credential and would only fill the control plane's memory; the
// credential code then reads kubernetes.io/tls and generic (Opaque)
// layouts.
var kinds = []watched{
	{group: "", resource: "services"},
	{group: "", resource: "namespaces"},
	{group: "", resource: "pods"},
	{group: "", resource: "nodes"},
	{group: "discovery.k8s.io", resource: "endpointslices"},
	{group: "", resource: "secrets", fieldSelector: secretsFieldSelector},

	{group: "networking.istio.io", resource: "virtualservices"},
	{group: "networking.istio.io", resource: "destinationrules"},
	{group: "networking.istio.io", resource: "gateways"},
	{group: "networking.istio.io", resource: "serviceentries"},
	{group: "networking.istio.io", resource: "workloadentries"},
	{group: "networking.istio.io", resource: "sidecars"},
	{group: "networking.istio.io", resource: "envoyfilters"},
	{group: "networking.istio.io", resource: "proxyconfigs"},
	{group: "networking.istio.io", resource: "workloadgroups"},
	{group: "security.istio.io", resource: "peerauthentications"},
	{group: "security.istio.io", resource: "authorizationpolicies"},
	{group: "security.istio.io", resource: "requestauthentications"},
	{group: "telemetry.istio.io", resource: "telemetries"},
	{group: "extensions.istio.io", resource: "wasmplugins"},

	{group: "gateway.networking.k8s.io", resource: "gatewayclasses"},
	{group: "gateway.networking.k8s.io", resource: "gateways"},
	{group: "gateway.networking.k8s.io", resource: "httproutes"},
	{group: "gateway.networking.k8s.io", resource: "grpcroutes"},
	{group: "gateway.networking.k8s.io", resource: "tcproutes"},
	{group: "gateway.networking.k8s.io", resource: "tlsroutes"},
	{group: "gateway.networking.k8s.io", resource: "udproutes"},
	{group: "gateway.networking.k8s.io", resource: "referencegrants"},
	{group: "gateway.networking.k8s.io", resource: "backendtlspolicies"},
	{group: "gateway.networking.k8s.io", resource: "backendlbpolicies"},
	{group: "gateway.networking.x-k8s.io", resource: "xlistenersets"},
	{group: "gateway.networking.x-k8s.io", resource: "xbackendtrafficpolicies"},
}

// secretsFieldSelector is istiod's SecretsFieldSelector.
var secretsFieldSelector = fields.AndSelectors(
	fields.OneTermNotEqualSelector("type", "helm.sh/release.v1"),
	fields.OneTermNotEqualSelector("type", string(corev1.SecretTypeServiceAccountToken))).String()

// resolved is a watched kind with the version the API server serves it at.
type resolved struct {
	watched
	gvr schema.GroupVersionResource
}

// resolve asks the API server which of kinds it serves, and at which
// version: the group's preferred version when it serves the resource,
// else the first version that does. missing lists the kinds not served
// (CRDs not installed), which are logged and watched once their CRD is
// installed (watchCRDs).
func resolve(dc discovery.DiscoveryInterface) (found []resolved, missing []watched, err error) {
	groups, err := dc.ServerGroups()
	if err != nil {
		return nil, nil, fmt.Errorf("discover API groups: %w", err)
	}
	served := map[string]map[string]bool{} // group/version -> resources
	for _, k := range kinds {
		v, err := servedVersion(dc, groups.Groups, k, served)
		if err != nil {
			return nil, nil, err
		}
		if v == "" {
			missing = append(missing, k)
			continue
		}
		if k.name == "" {
			k.name = groupResource(k)
		}
		found = append(found, resolved{watched: k, gvr: schema.GroupVersionResource{Group: k.group, Version: v, Resource: k.resource}})
	}
	return found, missing, nil
}

func groupResource(k watched) string {
	if k.group == "" {
		return k.resource
	}
	return k.resource + "." + k.group
}

// servedVersion is the version at which the API server serves k, or ""
// when it does not. served caches resource lists by group/version.
func servedVersion(dc discovery.DiscoveryInterface, groups []metav1.APIGroup, k watched, served map[string]map[string]bool) (string, error) {
	for _, g := range groups {
		if g.Name != k.group {
			continue
		}
		versions := []string{g.PreferredVersion.Version}
		for _, v := range g.Versions {
			if v.Version != g.PreferredVersion.Version {
				versions = append(versions, v.Version)
			}
		}
		for _, v := range versions {
			gv := schema.GroupVersion{Group: k.group, Version: v}.String()
			res, ok := served[gv]
			if !ok {
				list, err := dc.ServerResourcesForGroupVersion(gv)
				if err != nil {
					return "", fmt.Errorf("discover %s: %w", gv, err)
				}
				res = map[string]bool{}
				for _, r := range list.APIResources {
					res[r.Name] = true
				}
				served[gv] = res
			}
			if res[k.resource] {
				return v, nil
			}
		}
	}
	return "", nil
}
