package xdsgen

import (
	"slices"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
)

// viewKey is everything the outbound cluster loop (clusters) reads of a
// proxy, so proxies with equal keys get the same lists of clusters and
// endpoint assignments, built once per Generator: istiod builds a
// sidecar's CDS per proxy from cached clusters; here the assembled list
// itself is shared, so a full push of a thousand proxies in one
// namespace walks the mesh's services once, not a thousand times.
//   - proxyType, namespace: service visibility (exportTo), DestinationRule
//     resolution, credentialName clusters (serviceCluster's key);
//   - sidecar: the Sidecar resource whose scope decides which services and
//     ports are visible (SidecarScope is a function of it and namespace);
//   - locality: DNS clusters and locality-weighted endpoints;
//   - labels: the proxy's labels, only when some failoverPriority in the
//     push reads them (serviceEndpoints' priorityLabels);
//   - captured: a captured sidecar's passthrough clusters are Istio's
//     (capture.go).
type viewKey struct {
	captured  bool
	proxyType model.ProxyType
	namespace string
	sidecar   *config.Resource
	locality  string
	labels    string
}

// outboundView is one viewKey's cluster loop output.
type outboundView struct {
	clusters  []*cluster.Cluster
	endpoints []*endpoint.ClusterLoadAssignment
	conflicts []string
}

// sharedClusters runs the cluster loop for the proxy's view once per
// Generator and appends its output, all of it validated when built.
func (g *generation) sharedClusters() error {
	if g.gen == nil {
		return g.clusters()
	}
	k := viewKey{proxyType: g.proxy.Type, namespace: g.proxy.Namespace, locality: g.proxy.Locality, captured: g.proxy.Captured()}
	if g.scope != nil {
		k.sidecar = g.scope.Resource
	}
	if g.gen.usesFailoverPriority() {
		k.labels = labelsString(g.proxy.Labels)
	}
	v, err := g.gen.views.get(k, func() (*outboundView, error) {
		b := g.sub(&model.Proxy{Type: k.proxyType, Namespace: k.namespace, Locality: k.locality,
			Labels: g.proxy.Labels, InterceptionMode: g.proxy.InterceptionMode}, g.scope)
		if err := b.clusters(); err != nil {
			return nil, err
		}
		if err := b.validateOwn(); err != nil {
			return nil, err
		}
		return &outboundView{clusters: b.out.Clusters, endpoints: b.out.Endpoints, conflicts: b.out.Conflicts}, nil
	})
	if err != nil {
		return err
	}
	if len(g.out.Clusters) == 0 && len(g.out.Endpoints) == 0 {
		g.out.ViewClusters, g.out.ViewEndpoints = len(v.clusters), len(v.endpoints)
	}
	for _, c := range v.clusters {
		g.addSharedCluster(c)
	}
	for _, e := range v.endpoints {
		g.addSharedEndpoints(e)
	}
	g.out.Conflicts = append(g.out.Conflicts, v.conflicts...)
	return nil
}

// usesFailoverPriority is the push's, computed once.
func (gen *Generator) usesFailoverPriority() bool {
	gen.failoverOnce.Do(func() { gen.failover = gen.push.UsesFailoverPriority() })
	return gen.failover
}

// labelsString is labels in a canonical form.
func labelsString(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(labels[k])
		b.WriteByte(0)
	}
	return b.String()
}
