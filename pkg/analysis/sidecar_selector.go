package analysis

import (
	"sort"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/sidecar/selector.go.
func init() {
	register(&Analyzer{
		Name:      "sidecar.SelectorAnalyzer",
		Workloads: true,
		Description: "Validates that sidecars that define a workload selector " +
			"match at least one pod, and that there aren't multiple sidecar resources that select overlapping pods",
		Codes: []string{"IST0101", "IST0110", "IST0111", "IST0167"},
		run:   analyzeSidecarSelectors,
	})
}

// Ambient mode markers (util/in_mesh.go PodInAmbientMode, NamespaceInAmbientMode).
const (
	ambientRedirectionAnnotation = "ambient.istio.io/redirection"
	dataplaneModeLabel           = "istio.io/dataplane-mode"
	revisionLabel                = "istio.io/rev"
	injectionLabel               = "istio-injection"
)

func analyzeSidecarSelectors(c *Context) {
	podSidecars := map[*Object][]*Object{}
	var pods []*Object
	nsSidecars := map[string][]*Object{}
	var namespaces []string
	for _, sc := range c.Objects(config.KindSidecar) {
		s := sc.Spec.(*networking.Sidecar)
		if len(s.GetWorkloadSelector().GetLabels()) == 0 {
			if nsSidecars[sc.Namespace] == nil {
				namespaces = append(namespaces, sc.Namespace)
			}
			nsSidecars[sc.Namespace] = append(nsSidecars[sc.Namespace], sc)
			continue
		}
		found := false
		for _, pod := range c.Objects(KindPod) {
			if pod.Namespace != sc.Namespace || !selects(s.WorkloadSelector.Labels, pod.Labels) {
				continue
			}
			found = true
			if podSidecars[pod] == nil {
				pods = append(pods, pod)
			}
			podSidecars[pod] = append(podSidecars[pod], sc)
		}
		if !found {
			sel := selectorString(s.WorkloadSelector.Labels)
			c.report(ReferencedResourceNotFound, sc, sprintf(pathWorkloadSelector, selectorLabel(sel)), "selector", sel)
		}
	}
	reported := map[*Object]bool{}
	for _, pod := range pods {
		list := podSidecars[pod]
		ambient := pod.Annotations[ambientRedirectionAnnotation] == "enabled"
		if len(list) == 1 && !ambient {
			continue
		}
		for _, sc := range list {
			if ambient {
				if !reported[sc] {
					reported[sc] = true
					c.report(IneffectivePolicy, sc, "", "selected workload is in ambient mode, the policy has no impact")
				}
				continue
			}
			c.report(ConflictingSidecarWorkloadSelectors, sc, pathMetadataName, sidecarNames(list), pod.Namespace, pod.Name)
		}
	}
	for _, ns := range namespaces {
		list := nsSidecars[ns]
		if namespaceAmbient(c.Find(config.KindNamespace, "", ns)) {
			for _, sc := range list {
				if !reported[sc] {
					reported[sc] = true
					c.report(IneffectivePolicy, sc, "", "namespace is in ambient mode, the policy has no impact")
				}
			}
			continue
		}
		if len(list) > 1 {
			for _, sc := range list {
				c.report(MultipleSidecarsWithoutWorkloadSelectors, sc, "", sidecarNames(list), ns)
			}
		}
	}
}

func namespaceAmbient(ns *Object) bool {
	if ns == nil || ns.Labels[injectionLabel] == "enabled" || ns.Labels[revisionLabel] != "" {
		return false
	}
	return ns.Labels[dataplaneModeLabel] == "ambient"
}

// sidecarNames is getNames: the Sidecars' names, sorted.
func sidecarNames(list []*Object) []string {
	names := make([]string, 0, len(list))
	for _, sc := range list {
		names = append(names, sc.Name)
	}
	sort.Strings(names)
	return names
}
