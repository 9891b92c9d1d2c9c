package analysis

import (
	networking "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// sluice's own check (issue 13): STRICT mTLS on a workload that a
// workload without a sidecar routes to.
func init() {
	register(&Analyzer{
		Name:        "sluice.StrictMTLSCallerAnalyzer",
		Description: "Checks for workloads whose PeerAuthentication requires mTLS (STRICT) while a workload without a sidecar routes to them.",
		Codes:       []string{"SLU0008"},
		run:         analyzeStrictCallers,
	})
}

// caller is a workload without a sidecar: a Pod or WorkloadEntry with
// sidecar.istio.io/inject: "false" as a label or annotation.
type caller struct {
	obj    *Object
	labels map[string]string
}

func sidecarlessCallers(c *Context) []caller {
	var out []caller
	add := func(o *Object, labels map[string]string) {
		if labels[sidecarInjectKey] == "false" || o.Annotations[sidecarInjectKey] == "false" {
			out = append(out, caller{o, labels})
		}
	}
	for _, o := range c.Objects(KindPod) {
		add(o, o.Labels)
	}
	for _, o := range c.Objects(config.KindWorkloadEntry) {
		labels := map[string]string{}
		for k, v := range o.Labels {
			labels[k] = v
		}
		for k, v := range o.Spec.(*networking.WorkloadEntry).GetLabels() {
			labels[k] = v
		}
		add(o, labels)
	}
	return out
}

const sidecarInjectKey = "sidecar.istio.io/inject"

// analyzeStrictCallers finds, for each workload without a sidecar, the
// VirtualService routes whose match selects it by sourceLabels, and
// reports the PeerAuthentication that makes a destination workload of
// those routes STRICT. Only routes that name the caller in sourceLabels
// are followed: that is what proves the caller routes there.
func analyzeStrictCallers(c *Context) {
	callers := sidecarlessCallers(c)
	if len(callers) == 0 {
		return
	}
	reported := map[string]bool{}
	for _, vsObj := range c.Objects(config.KindVirtualService) {
		vs := vsObj.Spec.(*networking.VirtualService)
		for _, r := range vs.GetHttp() {
			var hosts []string
			for _, d := range r.GetRoute() {
				hosts = append(hosts, d.GetDestination().GetHost())
			}
			for _, cl := range callers {
				if !httpMatchSelects(r.GetMatch(), cl) {
					continue
				}
				for _, h := range hosts {
					strictTargets(c, vsObj, h, func(pa *Object, target string) {
						key := pa.FullName() + "|" + cl.obj.Ref().String() + "|" + vsObj.FullName() + "|" + target
						if !reported[key] {
							reported[key] = true
							c.report(StrictMTLSCallerWithoutSidecar, pa, "", target, cl.obj.Ref().String(), vsObj.FullName())
						}
					})
				}
			}
		}
	}
}

// httpMatchSelects reports whether some match names the caller by
// sourceLabels (and, if set, sourceNamespace).
func httpMatchSelects(matches []*networking.HTTPMatchRequest, cl caller) bool {
	for _, m := range matches {
		if len(m.GetSourceLabels()) == 0 {
			continue
		}
		if m.GetSourceNamespace() != "" && m.GetSourceNamespace() != cl.obj.Namespace {
			continue
		}
		if selects(m.GetSourceLabels(), cl.labels) {
			return true
		}
	}
	return false
}

// strictTargets calls found for each endpoint of host (as vs's namespace
// sees it) whose effective PeerAuthentication mode is STRICT on every
// port, with that PeerAuthentication.
func strictTargets(c *Context, vs *Object, host string, found func(pa *Object, target string)) {
	for _, svc := range registryServices(c, vs.Namespace, host) {
		if svc.MeshExternal {
			continue
		}
		labels, _ := endpointLabels(c, svc)
		for _, l := range labels {
			if pa := strictPeerAuthentication(c, svc.Namespace, l); pa != nil {
				found(pa, sprintf("the workload %s of %s", selectorString(l), svc.Hostname))
			}
		}
	}
}

// strictPeerAuthentication returns the PeerAuthentication that decides a
// workload's mode when that mode is STRICT with no port-level exception:
// the workload's own (selector), else its namespace's, else the root
// namespace's; UNSET defers to the next (istio/istio
// pilot/pkg/security/authn/policy_applier.go, ComposePeerAuthentication).
func strictPeerAuthentication(c *Context, ns string, labels map[string]string) *Object {
	root := c.Mesh.GetRootNamespace()
	if root == "" {
		root = c.IstioNamespace
	}
	var workload, namespace, mesh *Object
	for _, o := range c.Objects(config.KindPeerAuthentication) {
		pa := o.Spec.(*securityv1beta1.PeerAuthentication)
		sel := pa.GetSelector().GetMatchLabels()
		switch {
		case o.Namespace == ns && len(sel) > 0 && selects(sel, labels) && workload == nil:
			workload = o
		case o.Namespace == ns && len(sel) == 0 && namespace == nil:
			namespace = o
		case o.Namespace == root && len(sel) == 0 && mesh == nil:
			mesh = o
		}
	}
	for _, o := range []*Object{workload, namespace, mesh} {
		if o == nil {
			continue
		}
		pa := o.Spec.(*securityv1beta1.PeerAuthentication)
		switch pa.GetMtls().GetMode() {
		case securityv1beta1.PeerAuthentication_MutualTLS_UNSET:
			continue
		case securityv1beta1.PeerAuthentication_MutualTLS_STRICT:
			for _, p := range pa.GetPortLevelMtls() {
				if p.GetMode() != securityv1beta1.PeerAuthentication_MutualTLS_STRICT {
					return nil
				}
			}
			return o
		}
		return nil
	}
	return nil
}
