package xdsgen

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/workloadapi"
	"github.com/sluice-mesh/sluice/pkg/workloadapi/security"
)

// The workload API (WDS), what istiod serves its ztunnels
// (pilot/pkg/xds/workload.go, pilot/pkg/serviceregistry/ambient): every
// workload and service of the mesh as Address resources and every
// AuthorizationPolicy ztunnel can enforce as Authorization resources.
// Their type URLs are Istio's (pilot/pkg/model/xds.go AddressType,
// WorkloadAuthorizationType): the protos keep Istio's packages.
const (
	AddressType       = "type.googleapis.com/istio.workload.Address"
	AuthorizationType = "type.googleapis.com/istio.security.Authorization"
)

// clusterID is the cluster every workload is in: istiod's default
// CLUSTER_ID (sluice runs one cluster).
const clusterID = "Kubernetes"

// WDS is the workload API of one push: the same for every ztunnel, built
// once per Generator.
type WDS struct {
	Addresses      []*workloadapi.Address
	Authorizations []*security.Authorization
	// Warnings are what ztunnel is not sent, or sent in part, and why,
	// each naming the object (istiod writes them to the policy's status).
	Warnings []string
}

// AddressName is an Address resource's name, as istiod names it
// (model.AddressInfo.ResourceName): a workload's uid, a service's
// namespace/hostname.
func AddressName(a *workloadapi.Address) string {
	switch t := a.GetType().(type) {
	case *workloadapi.Address_Workload:
		return t.Workload.GetUid()
	case *workloadapi.Address_Service:
		return t.Service.GetNamespace() + "/" + t.Service.GetHostname()
	}
	return ""
}

// AuthorizationName is an Authorization resource's name, as istiod names
// it (model.WorkloadAuthorization.ResourceName): namespace/name.
func AuthorizationName(a *security.Authorization) string {
	return a.GetNamespace() + "/" + a.GetName()
}

// WDS returns the push's workload API, built on first use.
func (g *Generator) WDS() (*WDS, error) {
	w, err := g.wds.get(struct{}{}, func() (*WDS, error) { return BuildWDS(g.push) })
	if err != nil {
		return nil, fmt.Errorf("workload API: %w", err)
	}
	return w, nil
}

// BuildWDS builds the workload API of a push: services, workloads (each
// naming the services it backs and the policies selecting it) and
// authorizations (AuthorizationPolicies and converted
// PeerAuthentications), each list sorted by resource name.
func BuildWDS(push *model.PushContext) (*WDS, error) {
	out := &WDS{}
	rootNS := push.RootNamespace()
	policies := push.AuthorizationPolicies()
	var selecting []*model.AuthorizationPolicy
	for _, ap := range policies {
		a, msg := wdsAuthorization(rootNS, ap)
		if msg != "" {
			out.Warnings = append(out.Warnings, fmt.Sprintf("AuthorizationPolicy %s/%s: %s", ap.Namespace, ap.Name, msg))
		}
		if a == nil {
			continue
		}
		out.Authorizations = append(out.Authorizations, a)
		if a.Scope == security.Scope_WORKLOAD_SELECTOR {
			selecting = append(selecting, ap)
		}
	}
	pa := newPeerAuthns(rootNS, push.ResourcesOf(config.KindPeerAuthentication))
	out.Authorizations = append(out.Authorizations, pa.authorizations()...)
	b := newWorkloadBuilder(push, selecting, pa)
	services, err := b.services()
	if err != nil {
		return nil, err
	}
	for _, s := range services {
		out.Addresses = append(out.Addresses, &workloadapi.Address{Type: &workloadapi.Address_Service{Service: s}})
	}
	for _, w := range b.workloads() {
		out.Addresses = append(out.Addresses, &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: w}})
	}
	slices.SortStableFunc(out.Addresses, func(a, b *workloadapi.Address) int { return cmp.Compare(AddressName(a), AddressName(b)) })
	// Two workloads of one uid (a ServiceEntry listing an address twice):
	// the first is kept, as a resource name names one resource.
	out.Addresses = slices.CompactFunc(out.Addresses, func(a, c *workloadapi.Address) bool {
		if AddressName(a) != AddressName(c) {
			return false
		}
		b.warn("address %q is generated twice; the workload API has the first", AddressName(a))
		return true
	})
	slices.SortFunc(out.Authorizations, func(a, b *security.Authorization) int {
		return cmp.Compare(AuthorizationName(a), AuthorizationName(b))
	})
	out.Warnings = append(out.Warnings, b.warnings...)
	return out, nil
}

// ztunnel fills a ztunnel's resources: the push's workload API, nothing
// else.
func (g *generation) ztunnel() error {
	var w *WDS
	var err error
	if g.gen != nil {
		w, err = g.gen.WDS()
	} else {
		w, err = BuildWDS(g.push)
	}
	if err != nil {
		return err
	}
	// The messages are shared (never changed once built); the lists are
	// the proxy's own, as Generate promises its caller.
	g.out.Addresses, g.out.Authorizations = slices.Clone(w.Addresses), slices.Clone(w.Authorizations)
	g.out.Conflicts = append(g.out.Conflicts, w.Warnings...)
	return nil
}
