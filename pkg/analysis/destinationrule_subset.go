package analysis

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/destinationrule/subset.go.
func init() {
	register(&Analyzer{
		Name:        "destinationrule.SubsetSelectPodAnalyzer",
		Workloads:   true,
		Aliases:     []string{"destinationrule.PodNotSelectedAnalyzer"},
		Description: "Checks if pods are selected by subsets in destination rules.",
		Codes:       []string{"IST0173", "IST0174"},
		run:         analyzeSubsetPods,
	})
}

// Node and topology labels a pod's labels are augmented with before
// subsets select it (pilot/pkg/serviceregistry/util/label AugmentLabels).
const (
	labelTopologyRegion  = "topology.kubernetes.io/region"
	labelTopologyZone    = "topology.kubernetes.io/zone"
	labelTopologySubzone = "topology.istio.io/subzone"
	labelHostname        = "kubernetes.io/hostname"
)

type subsetMatcher struct {
	dr       *Object
	name     string
	selector map[string]string
	matched  bool
}

// analyzeSubsetPods reports a DestinationRule whose host is no service,
// and each subset that selects no pod.
func analyzeSubsetPods(c *Context) {
	hosts := serviceEntryHosts(c.Snapshot)
	var matchers []*subsetMatcher
	for _, o := range c.Objects(config.KindDestinationRule) {
		dr := o.Spec.(*networking.DestinationRule)
		se := destinationHost(o.Namespace, dr.GetExportTo(), dr.GetHost(), hosts)
		if se == nil {
			c.report(UnknownDestinationRuleHost, o, "", dr.GetHost())
			continue
		}
		for _, ss := range dr.GetSubsets() {
			sel := map[string]string{}
			for k, v := range se.GetWorkloadSelector().GetLabels() {
				sel[k] = v
			}
			for k, v := range ss.GetLabels() {
				sel[k] = v
			}
			matchers = append(matchers, &subsetMatcher{dr: o, name: ss.GetName(), selector: sel})
		}
	}
	for _, pod := range c.Objects(KindPod) {
		labels := podTopologyLabels(c, pod)
		for _, m := range matchers {
			if !m.matched && selects(m.selector, labels) {
				m.matched = true
			}
		}
	}
	for _, m := range matchers {
		if !m.matched {
			c.report(DestinationRuleSubsetNotSelectPods, m.dr, "", m.name)
		}
	}
}

// podTopologyLabels is a pod's labels with its node's region, zone and
// subzone and its node name added.
func podTopologyLabels(c *Context, pod *Object) map[string]string {
	spec := podSpec(pod)
	out := map[string]string{}
	for k, v := range pod.Labels {
		out[k] = v
	}
	if node := c.Find(KindNode, "", spec.NodeName); node != nil && spec.NodeName != "" {
		for _, k := range []string{labelTopologyRegion, labelTopologyZone, labelTopologySubzone} {
			if v := node.Labels[k]; v != "" {
				out[k] = v
			}
		}
	}
	if spec.NodeName != "" {
		out[labelHostname] = spec.NodeName
	}
	return out
}
