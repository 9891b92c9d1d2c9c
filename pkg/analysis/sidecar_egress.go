package analysis

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// sluice's own check (issue 13): Sidecar egress hosts that match nothing.
func init() {
	register(&Analyzer{
		Name:        "sluice.SidecarEgressHostAnalyzer",
		Description: "Checks that each Sidecar egress host (namespace/dnsName) matches a service or VirtualService, and suggests the name meant.",
		Codes:       []string{"SLU0007"},
		run:         analyzeSidecarEgressHosts,
	})
}

// analyzeSidecarEgressHosts reports an egress host "ns/dnsName" that
// matches no service declared in ns ("." the Sidecar's namespace, "*"
// any) visible to the Sidecar's namespace, nor any VirtualService host
// there: Istio imports services and VirtualServices by those hosts
// (networking/v1alpha3/sidecar.proto IstioEgressListener.hosts), so such a
// host imports nothing. dnsName "*" and namespace "~" are never
// reported. dnsName is a FQDN: a short name ("default/backend") is the
// usual mistake, and the message names the service meant.
func analyzeSidecarEgressHosts(c *Context) {
	for _, o := range c.Objects(config.KindSidecar) {
		for _, eg := range o.Spec.(*networking.Sidecar).GetEgress() {
			for _, h := range eg.GetHosts() {
				ns, name, ok := strings.Cut(h, "/")
				if !ok || ns == "~" || name == "*" {
					continue
				}
				if ns == "." {
					ns = o.Namespace
				}
				if egressHostMatches(c, o.Namespace, ns, name) {
					continue
				}
				c.report(SidecarEgressHostNotFound, o, "", h, o.Namespace, egressHint(c, o.Namespace, ns, name))
			}
		}
	}
}

func egressHostMatches(c *Context, sidecarNS, ns, name string) bool {
	for _, svc := range c.Registry.Services() {
		if (ns == "*" || svc.Namespace == ns) && svc.VisibleTo(sidecarNS) && hostMatches(name, svc.Hostname) {
			return true
		}
	}
	for _, vs := range c.Objects(config.KindVirtualService) {
		if ns != "*" && vs.Namespace != ns {
			continue
		}
		for _, vh := range vs.Spec.(*networking.VirtualService).GetHosts() {
			if hostMatches(name, convertHostToFQDN(vs.Namespace, vh)) {
				return true
			}
		}
	}
	return false
}

// egressHint suggests the host meant: a visible service whose name is
// dnsName's first label, or says what an egress host must name.
func egressHint(c *Context, sidecarNS, ns, name string) string {
	short, _, _ := strings.Cut(name, ".")
	var best *registry.Service
	for _, svc := range c.Registry.Services() {
		first, _, _ := strings.Cut(svc.Hostname, ".")
		if first != short || !svc.VisibleTo(sidecarNS) {
			continue
		}
		if best == nil || svc.Namespace == ns && best.Namespace != ns {
			best = svc
		}
	}
	if best != nil {
		return sprintf("Did you mean %q? Egress hosts take the namespace that declares the service and its fully qualified name.", best.Namespace+"/"+best.Hostname)
	}
	return "Egress hosts take the namespace that declares the service and its fully qualified name (e.g. \"default/backend.default.svc.cluster.local\"); declare an external host with a ServiceEntry."
}
